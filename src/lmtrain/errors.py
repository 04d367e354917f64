"""User-facing errors: one clear paragraph, exit code 2, no traceback."""

from __future__ import annotations

import sys

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class UserError(Exception):
    """A problem with the user's input (config, data file, checkpoint path).

    The message must name the file, line or config key at fault and say what to do.
    The CLI prints it without a traceback and exits with code 2.
    """


def report_user_error(error: BaseException, command: str | None = None) -> None:
    """Print ``error`` as one readable paragraph on stderr, without a traceback."""
    prefix = f"lmtrain {command}: error: " if command else "lmtrain: error: "
    message = str(error).strip()
    try:
        from rich.console import Console
        from rich.text import Text

        # soft_wrap keeps the paragraph intact for terminals and for anyone grepping the log.
        Console(stderr=True, soft_wrap=True).print(Text(prefix, style="bold red") + Text(message))
    except ImportError:
        print(prefix + message, file=sys.stderr)

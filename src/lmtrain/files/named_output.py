"""A file the user names on the command line (``predict output=``, ``plot out=``): what lmtrain may write there.

lmtrain replaces a file it did not write only when the file is of the kind it writes there (an earlier
predictions file, an earlier picture): never through a symbolic link, never a folder, never a file of another
kind, which would be the user's own (a README, a CSV, the input file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lmtrain.errors import UserError
from lmtrain.files.atomic import cannot_create_reason, is_link, link_refused


def check_named_output(
    path: Path, key: str, kind: str, problem_with: Callable[[Path], str | None], example: str
) -> None:
    """Refuse writing ``kind`` to ``path`` (named by ``key=``) when it is a link, a folder, or an existing file
    that ``problem_with`` says is not of that kind (it returns why, or None for a file lmtrain may replace).

    Raises:
        UserError: naming ``key=path``, what is there, and what to do (``example``: a name that would do).
    """
    if is_link(path):
        raise link_refused(path)
    if path.is_dir():
        raise UserError(f"{key}={path} is a folder; give the file to write, e.g. {key}={path / example}.")
    if not path.exists():
        folder = next((p for p in path.absolute().parents if p.exists() or p.is_symlink()), None)
        if folder is not None and not folder.is_dir():
            raise UserError(
                f"{key}={path}: its folder cannot be made, {folder} is a file in the way; choose another place."
            )
        return
    problem = problem_with(path) if path.is_file() else "it is not a regular file"
    if problem:
        raise UserError(
            f"{key}={path} exists and is not {kind} ({problem}); lmtrain replaces an earlier file of its own "
            "kind, never a file of another kind, which could be yours. Move it away or choose another name."
        )


def head_problem(signatures: tuple[bytes, ...], what: str) -> Callable[[Path], str | None]:
    """A ``problem_with`` for :func:`check_named_output`: the file must start with one of ``signatures``
    (leading white space skipped), else it is "not ``what``"."""

    def problem(path: Path) -> str | None:
        with open(path, "rb") as file:
            head = file.read(256).lstrip()
        return None if head.startswith(signatures) else f"it does not start as {what} does"

    return problem


@contextmanager
def writing(path: Path, key: str) -> Iterator[None]:
    """Turn a failure to write ``path`` (named by ``key=``; no permission, a full disk) into one paragraph.

    Raises:
        UserError: naming ``key=path`` and why (the file is left as it was: writes go through a temporary file).
    """
    try:
        yield
    except OSError as error:
        raise UserError(
            f"{key}={path}: cannot write it ({cannot_create_reason(error)}); choose a place you can write, with room."
        ) from None

"""`lmtrain <command> [overrides]`: maps a subcommand to its Hydra config and `run(cfg)`.

Hydra keeps everything users expect from it: `key=value` overrides, `-m` sweeps, `--cfg job`,
`hydra.run.dir=...`; `--help` is lmtrain's own (:mod:`lmtrain.cli.help`: every key described). Before
Hydra starts, overrides are composed once (:mod:`lmtrain.cli.compose`) so that an unknown group option,
a misspelt key, a value of the wrong type or out of its range is
reported as one clear paragraph with exit code 2 instead of a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator

from lmtrain.cli.args import quote_free_text
from lmtrain.cli.compose import compose_command, config_dir, validate_overrides
from lmtrain.cli.shutdown import exit_quickly, settled_imports
from lmtrain.commands.config_validation import check_config
from lmtrain.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError, report_user_error

# command -> one-line description ({group}: that config group's options, read from configs/<group>/);
# each has configs/<command>.yaml and lmtrain.commands.<command>
COMMANDS: dict[str, str] = {
    "pretrain": "pretrain a language model (model={model}) on a corpus",
    "generate": "continue a prompt with a GPT checkpoint, or fill [MASK] tokens with a BERT one",
    "evaluate": "held-out loss / perplexity or masked-token accuracy of a checkpoint",
    "embed": "train and evaluate word embeddings (method={method})",
    "finetune": "fine-tune a pretrained backbone (task={task})",
    "predict": "tag, classify or complete raw text with a fine-tuned run",
    "export": "write a checkpoint as a Hugging Face folder (format=hf out=...)",
}

# commands that read run directories rather than compose a config: plain argparse, no Hydra.
# command -> (one-line description, module with main(argv))
NATIVE_COMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("list runs: status, differing overrides, steps, tokens/s, main metric (--json)", "lmtrain.commands.runs"),
    "plot": (
        "plot metrics of runs into a PNG: lmtrain plot RUN ... [metrics=[...]] [x=step|tokens|time]",
        "lmtrain.commands.plot",
    ),
}

# flags after which Hydra only prints information: no need to validate the overrides first
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
# flags that change what is composed: leave validation to Hydra itself
_SKIP_VALIDATION_FLAGS = {
    "-m",
    "--multirun",
    "--config-dir",
    "-cd",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--experimental-rerun",
}


def _descriptions() -> dict[str, str]:
    """Every command's one-line description, the options of the groups it names filled in."""
    from lmtrain.cli.help import with_options

    descriptions = {
        **COMMANDS,
        **{name: text for name, (text, _) in NATIVE_COMMANDS.items()},
        "resume": "continue a run in place: lmtrain resume RUN_DIR [key=value ...]",
    }
    return with_options(descriptions, config_dir())


def _usage() -> str:
    from lmtrain.cli.help import usage

    return usage(_descriptions(), config_dir())


def command_help(command: str, args: list[str]) -> str:
    """`lmtrain <command> [overrides] --help`: groups, options and every key of the chosen presets.

    Raises:
        UserError: the overrides do not compose.
    """
    from lmtrain.cli.help import command_help as render
    from lmtrain.cli.help import without_sweeps
    from lmtrain.config import SCHEMAS

    if {"-m", "--multirun"} & set(args):
        args = without_sweeps(args)  # help describes the keys; a swept one is shown with its default
    cfg = compose_command(command, args, with_hydra=True)
    description = _descriptions()[command]
    return render(command, description, cfg, SCHEMAS.get(command))


def _task(command: str, run: Callable) -> Callable:
    def task(cfg):
        from omegaconf.errors import MissingMandatoryValue

        from lmtrain.config.plug_nodes import type_plug_nodes
        from lmtrain.run_folder.claim import claim_run_dir
        from lmtrain.run_folder.layout import hydra_run_dir
        from lmtrain.run_folder.status import exit_state, record_exit

        claim = None
        try:
            cfg = type_plug_nodes(typed_config(cfg, command), command)
            check_config(cfg, command)  # again here: `-m` sweeps skip the validation before Hydra
            claim = claim_run_dir(cfg, command, hydra_run_dir())
            record_exit(claim, command, "running")
            result = run(cfg)
            record_exit(claim, command, "finished")
            return result
        except KeyboardInterrupt:  # Ctrl-C outside the training loop (reading, tokenizing): no traceback
            record_exit(claim, command, "interrupted", signal="SIGINT", exit_code=EXIT_INTERRUPTED)
            print(f"lmtrain {command}: interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except SystemExit as stop:  # the training loop stopped by a signal exits with 128 + its number
            state, details = exit_state(stop.code)
            record_exit(claim, command, state, **details)
            raise
        except UserError as error:
            record_exit(claim, command, "failed", error=str(error), exit_code=EXIT_USER_ERROR)
            report_user_error(error, command)
            sys.exit(EXIT_USER_ERROR)
        except MissingMandatoryValue as error:
            key = getattr(error, "full_key", None) or "a required key"
            error = UserError(
                f"{key} must be set for this configuration; give it on the command line, "
                f"e.g. `lmtrain {command} {key}=...`."
            )
            record_exit(claim, command, "failed", error=str(error), exit_code=EXIT_USER_ERROR)
            report_user_error(error, command)
            sys.exit(EXIT_USER_ERROR)
        except Exception as error:
            record_exit(claim, command, "failed", error=f"{type(error).__name__}: {error}")
            raise
        finally:
            if claim is not None:
                claim.release()

    task.__name__ = command
    task.__module__ = f"lmtrain.commands.{command}"
    return task


@contextlib.contextmanager
def _exit_on_user_error(command: str | None) -> Iterator[None]:
    """A UserError raised inside is reported as one paragraph (naming ``command``) and exits with 2."""
    try:
        yield
    except UserError as error:
        report_user_error(error, command)
        sys.exit(EXIT_USER_ERROR)


def _run_native(command: str, args: list[str]) -> None:
    """Run a command of NATIVE_COMMANDS: its module's ``main(args)``, user errors as one paragraph."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    module = importlib.import_module(NATIVE_COMMANDS[command][1])
    with _exit_on_user_error(command):
        module.main(args)


def _hydra_query(command: str, shell: str) -> None:
    """Print Hydra's completions of ``$COMP_LINE`` (``lmtrain <overrides>``) for ``command``'s config."""
    import hydra

    from lmtrain.config import register_configs

    register_configs()
    sys.argv = ["lmtrain", "-sc", f"query={shell}"]
    hydra.main(config_path=str(config_dir()), config_name=command, version_base=None)(lambda cfg: None)()


def _completion(args: list[str]) -> None:
    """``lmtrain completion bash|zsh|fish`` and ``lmtrain completion query <shell>`` (see lmtrain.cli.completion)."""
    from lmtrain.cli import completion

    commands = [*COMMANDS, *NATIVE_COMMANDS, "resume", "completion"]
    with _exit_on_user_error("completion"):
        completion.main(args, commands, list(COMMANDS), _hydra_query)


def _hydra_completion_flag(command: str, rest: list[str]) -> bool:
    """Hydra's ``-sc install|uninstall|query=<shell>`` after a command, answered for ``lmtrain`` as a whole.

    Returns False when the flag is not a completion request, leaving it to Hydra.
    """
    from lmtrain.cli import completion

    request = completion.hydra_completion_request(rest)
    if request is None or request[1] not in completion.SHELLS:
        return False
    action, shell = request
    if action == "install":
        sys.stdout.write(completion.script(shell))
    elif action == "uninstall":
        sys.stdout.write(completion.uninstall(shell))
    else:
        _completion(["query", shell])
    return True


def _rerun_settings(command: str, args: list[str]) -> list[str]:
    """Hydra settings for a run's saved config used as the primary config (``--config-name config``), once
    :func:`lmtrain.config.replay.check_config_rerun` found nothing in it that would run code (else exit 2).

    A saved ``.hydra/config.yaml`` holds the task config only, so without these the run would land
    in Hydra's default folder, under another job name, without the sweep summary.
    """
    from lmtrain.config.replay import check_config_rerun, names_primary_config

    settings: dict[str, str] = {}
    if names_primary_config(args):
        stamp = "${now:%Y-%m-%d_%H-%M-%S}"
        settings = {
            "hydra.run.dir": f"outputs/{command}/{stamp}",
            "hydra.sweep.dir": f"multirun/{command}/{stamp}",
            "hydra.sweep.subdir": "${hydra.job.num}",
            "hydra.job.name": command,
            "hydra.output_subdir": "null",
            "hydra.job_logging.handlers.file.class": "lmtrain.run_folder.job_log.JobLogHandler",
            "hydra.callbacks.sweep_summary._target_": "lmtrain.runs.sweep.SweepSummary",
        }
    given = {a.split("=", 1)[0].lstrip("+") for a in args if "=" in a}
    added = [f"++{key}={value}" for key, value in settings.items() if key not in given]
    with _exit_on_user_error(command):
        check_config_rerun(command, [*args, *added], config_dir())
    return added


def typed_config(cfg, command: str):
    """``cfg`` checked against the command's schema when it was composed without one (a saved config).

    Raises:
        UserError: a key the schema does not have, or a value of the wrong type.
    """
    from lmtrain.config.replay import fit_schema

    return fit_schema(cfg, command)


def _refuse_dashed_options(command: str, args: list[str]) -> None:
    """Exit 2 showing `--max_steps 5` (a habit from other tools) in Hydra's form, ``trainer.max_steps=5``."""
    from lmtrain.cli.hints import dashed_option_error

    try:
        dashed = dashed_option_error(command, args, lambda overrides, hydra: compose_command(command, overrides, hydra))
    except UserError:  # the command's own config does not compose (a user's --config-dir): Hydra's word
        return
    if dashed is not None:
        report_user_error(dashed, command)
        sys.exit(EXIT_USER_ERROR)


def _answered_without_a_config(args: list[str]) -> bool:
    """Answer what composes no config (the usage, the version, the native commands, completion);
    False when ``args`` start with a Hydra command or ``resume``."""
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
    elif args[0] in ("--version", "-V"):
        from lmtrain import __version__

        print(f"lmtrain {__version__}")
    elif args[0] in NATIVE_COMMANDS:
        _run_native(args[0], args[1:])
    elif args[0] == "completion":  # a shell script, or the completions of the line typed so far
        _completion(args[1:])
    else:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """Run ``lmtrain <command> [overrides]``; ``argv`` defaults to ``sys.argv[1:]``."""
    exit_quickly()
    args = list(sys.argv[1:] if argv is None else argv)
    if _answered_without_a_config(args):
        return
    if args[0] == "resume":  # a run's own command and overrides, continued in place
        from lmtrain.commands.resume import command_line

        with _exit_on_user_error("resume"):
            args = command_line(args[1:])
    command, rest = args[0], quote_free_text(args[1:])
    if command not in COMMANDS:
        report_user_error(
            UserError(
                f"unknown command '{command}'. Commands: {', '.join([*COMMANDS, *NATIVE_COMMANDS, 'resume'])}. "
                "Run `lmtrain --help` for what each does."
            )
        )
        sys.exit(EXIT_USER_ERROR)

    if {"-sc", "--shell-completion"} & set(rest) and _hydra_completion_flag(command, rest):
        return

    from lmtrain.config import register_configs

    register_configs()
    _refuse_dashed_options(command, rest)
    if {"--help", "-h"} & set(rest):  # lmtrain's own help: groups, options, every key with its description
        with _exit_on_user_error(command):
            print(command_help(command, rest))
        return
    with settled_imports(argv is None):  # the process's own command line: what it imports stays to the end
        from lmtrain.run_folder.placement import RunPlacement  # and with it torch

    left_to_hydra = set(rest) & (_INFO_FLAGS | _SKIP_VALIDATION_FLAGS)
    with _exit_on_user_error(command):
        if not left_to_hydra:
            validate_overrides(command, rest)
        # the run folder hydra.run.dir names, checked and made before Hydra makes it
        placement = RunPlacement() if left_to_hydra else RunPlacement.from_overrides(rest)
    rest = [*rest, *_rerun_settings(command, rest)]

    import hydra

    def run(cfg):  # the command's module, and torch with it, load only when the command really runs
        return importlib.import_module(f"lmtrain.commands.{command}").run(cfg)

    sys.argv = [f"lmtrain-{command}", *rest]
    task = placement.discarding_unused(_task(command, run))  # a command refused before any work leaves no folder
    hydra.main(config_path=str(config_dir()), config_name=command, version_base=None)(task)()

"""Every command printed under "Next:" after a run's summary runs as printed, in bash (no `<more>` placeholder,
which bash reads as a redirection): each is run, and a fine-tuning run it starts has its own suggestions run too."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from lmtrain.cli.main import main
from tests.conftest import TINY, text_data, write_corpus

# what a suggested command gets besides what it prints: a tiny run, and a run folder of its own (two runs
# of one command started within a second would otherwise share Hydra's default folder)
_TRAINING = ("finetune", "pretrain")
_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("project")
    write_corpus(path / "corpus.txt", n_docs=60)
    return path


def _next_lines(err: str) -> list[str]:
    """The commands printed under "Next:" in ``err``."""
    lines = err.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "Next:")
    return [line.strip() for line in itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1 :])]


def _as_bash_runs_it(line: str, project: Path) -> tuple[list[str], str] | None:
    """(the arguments, the standard input) that bash hands ``lmtrain`` when it runs ``line``; None for a comment."""
    args, stdin = project / "args", project / "stdin"
    stub = f'lmtrain() {{ printf "%s\\0" "$@" > {args}; cat > {stdin}; }}; '
    args.unlink(missing_ok=True)
    proc = subprocess.run(
        ["bash", "-c", stub + line], cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0 and not proc.stderr, f"`{line}` does not run as printed: {proc.stderr}"
    if not args.exists():
        assert line.startswith("#"), f"`{line}` ran no lmtrain command"
        return None
    return args.read_text().split("\0")[:-1], stdin.read_text()


def _lmtrain(argv: list[str], project: Path, monkeypatch, capsys, stdin: str = "") -> str:
    """Run ``lmtrain argv`` in-process in ``project`` (a tiny run, its own run folder); returns its stderr."""
    if argv[0] in _TRAINING and "debug=tiny" not in argv:
        argv = [*argv, *TINY]
    if argv[0] not in ("resume", "runs", "plot"):
        argv = [*argv, f"hydra.run.dir={project / 'outputs' / argv[0] / f'run{next(_NUMBERS)}'}"]
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code in (None, 0), f"`lmtrain {' '.join(argv)}` exited {stop.code}: {capsys.readouterr().err}"
    return capsys.readouterr().err


def _run_suggestions(err: str, project: Path, monkeypatch, capsys, depth: int = 1) -> list[str]:
    """Run every command under "Next:" in ``err`` (those of a fine-tuning run it starts too); returns them all."""
    ran = []
    for line in _next_lines(err):
        called = _as_bash_runs_it(line, project)
        ran.append(line)
        if called is None:
            continue
        argv, stdin = called
        out = _lmtrain(argv, project, monkeypatch, capsys, stdin)
        if depth and argv[0] == "finetune":
            ran += _run_suggestions(out, project, monkeypatch, capsys, depth - 1)
    return ran


@pytest.mark.parametrize(
    "start,expected",
    [
        (
            ["pretrain", "model=bert"],
            [
                "lmtrain evaluate",
                "lmtrain generate",
                "lmtrain finetune task=ner",
                "| lmtrain predict",
                "lmtrain export",
                "lmtrain resume",
                "lmtrain runs",
            ],
        ),
        (
            ["pretrain", "model=gpt"],
            [
                "lmtrain evaluate",
                "lmtrain generate",
                "lmtrain finetune task=generation",
                "| lmtrain predict",
                "lmtrain export",
            ],
        ),
        (["pretrain", "model=elmo"], ["lmtrain evaluate", "lmtrain finetune task=ner", "lmtrain resume"]),
        (["pretrain", "model=albef"], ["lmtrain finetune task=retrieval", "# lmtrain predict", "lmtrain resume"]),
        (["finetune", "task=classification", "init=scratch"], ["| lmtrain predict", "lmtrain resume", "lmtrain runs"]),
    ],
)
def test_every_suggestion_runs_as_printed(project, monkeypatch, capsys, start, expected):
    data = [] if "model=albef" in start or start[0] == "finetune" else text_data(project)
    err = _lmtrain([*start, *data], project, monkeypatch, capsys)
    ran = _run_suggestions(err, project, monkeypatch, capsys)
    assert not [line for line in ran if "<" in line or ">" in line]
    for fragment in expected:
        assert any(fragment in line for line in ran), (fragment, ran)


def test_suggestions_run_in_bash_for_a_run_folder_with_awkward_characters(tmp_path):
    """Every plug's suggestions, for a run folder whose path has a space, a comma and a quote."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from lmtrain.models.families import ModelFamily
    from lmtrain.plugs import plug_class
    from lmtrain.tasks import build_task
    from tests.conftest import compose_config

    run = tmp_path / "my runs, v2" / "it's_bert"
    lines = []
    for model in ("bert", "gpt", "elmo", "albef"):
        cfg = compose_config("pretrain", [f"model={model}"])
        objective = plug_class(cfg.objective, "objective")(OmegaConf.to_object(cfg.objective))
        family = plug_class(cfg.model, "model", ModelFamily)(OmegaConf.to_object(cfg.model))
        lines += objective.next_commands(run) + family.next_commands(run)
    for name in ("ner", "classification", "generation", "retrieval"):
        cfg = compose_config("finetune", [f"task={name}"])
        lines.append(build_task(cfg.task, OmegaConf.to_object(cfg.data)).predict_command(run))
    for line in lines:
        called = _as_bash_runs_it(line, tmp_path)
        if called is not None:
            values = [
                OverridesParser.create().parse_override(a).value()
                for a in called[0]
                if a.startswith(("ckpt=", "init=", "out="))
            ]
            assert str(run) in values or f"{run}-hf" in values, (line, called)

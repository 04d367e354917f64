"""The CLI end to end, as a user runs it: subprocesses in a temporary directory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli, text_data, wait_for_metrics, write_corpus


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    write_corpus(path / "corpus.txt", n_docs=40)
    return path


def _data(workdir: Path) -> list[str]:
    return text_data(workdir)


def test_help_lists_commands_and_config_groups(workdir):
    top = run_cli("--help", cwd=workdir)
    assert top.returncode == 0 and "pretrain" in top.stdout and "generate" in top.stdout
    sub = run_cli("pretrain", "--help", cwd=workdir)
    assert sub.returncode == 0
    assert "\nmodel:\n" in sub.stdout and "  * bert " in sub.stdout
    assert "\nobjective:\n" in sub.stdout and "trainer.max_steps=" in sub.stdout


def test_command_help_does_not_load_torch(workdir):
    probe = (
        "import sys\nfrom lmtrain.cli.main import main\ntry:\n    main(['pretrain', '--help'])\n"
        "except SystemExit:\n    pass\nprint('torch loaded:', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True)
    assert "Config groups" in out.stdout and "torch loaded: False" in out.stdout, out.stdout + out.stderr


def test_cfg_job_prints_composed_config_with_overrides(workdir):
    out = run_cli("pretrain", "--cfg", "job", "trainer.max_steps=50", "optim.lr=3e-4", "model.n_layers=2", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "max_steps: 50" in out.stdout and "lr: 0.0003" in out.stdout and "n_layers: 2" in out.stdout


def test_pretrain_writes_run_directory_contract(workdir):
    run_dir = workdir / "run"
    out = run_cli(
        "pretrain",
        "model=bert",
        *TINY,
        *_data(workdir),
        f"hydra.run.dir={run_dir}",
        "trainer.cpu_kernels=torch",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr
    assert "CPU kernels: torch (trainer.cpu_kernels=torch)" in out.stdout + out.stderr  # the log line
    assert "CPU memory:" not in out.stdout + out.stderr  # `torch`: the C allocator as it is, too
    for name in (
        ".hydra/config.yaml",
        "metrics.jsonl",
        "summary.json",
        "tokenizer.json",
        "checkpoints/step-20/model.safetensors",
        "checkpoints/step-20/trainer_state.pt",
        "checkpoints/last/model.safetensors",
    ):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"eval/mlm_acc", "eval/nsp_acc", "baseline/mlm_majority_acc", "tokens_per_s", "wall_seconds"} <= set(summary)
    assert summary["cpu_kernels"] == "torch"
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in e for e in events) and any("train/loss" in e for e in events)
    assert any("eval/mlm_acc" in e for e in events)


def test_sweep_writes_one_run_dir_per_job(workdir):
    sweep = workdir / "sweep"
    out = run_cli(
        "pretrain",
        "-m",
        "optim.lr=1e-3,3e-3",
        *TINY,
        "trainer.max_steps=4",
        *_data(workdir),
        f"hydra.sweep.dir={sweep}",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr
    assert (sweep / "0" / "summary.json").exists() and (sweep / "1" / "summary.json").exists()
    lrs = [json.loads((sweep / j / "summary.json").read_text())["config"]["optim"]["lr"] for j in "01"]
    assert lrs == [1e-3, 3e-3]


def _bad(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    out = run_cli("pretrain", *TINY, *args, f"hydra.run.dir={workdir / 'bad'}", cwd=workdir)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out


def test_unknown_group_option(workdir):
    assert "Could not find 'model/bort'" in _bad(workdir, "model=bort").stderr


def test_misspelt_key(workdir):
    assert "Key 'max_stepz' not in 'TrainerConfig'" in _bad(workdir, "trainer.max_stepz=5").stderr


def test_wrongly_typed_key(workdir):
    err = _bad(workdir, "trainer.max_steps=many").stderr
    assert "trainer.max_steps=many" in err and "could not be converted to Integer" in err


def test_missing_data_file(workdir):
    err = _bad(workdir, "data=text", "data.train_files=[nope.txt]", f"data.cache_dir={workdir / 'cache'}").stderr
    assert "data.train_files: file nope.txt does not exist" in err


def test_data_files_not_given(workdir):
    assert "data.train_files is empty: give your corpus" in _bad(workdir, "data=text").stderr


def test_empty_data_file(workdir):
    (workdir / "empty.txt").write_text("\n\n")
    err = _bad(workdir, "data=text", f"data.train_files=[{workdir / 'empty.txt'}]").stderr
    assert "empty.txt is empty" in err


def test_non_utf8_file(workdir):
    (workdir / "latin1.txt").write_bytes("first line\nsecond line caf\xe9\n".encode("latin-1"))
    err = _bad(workdir, "data=text", f"data.train_files=[{workdir / 'latin1.txt'}]").stderr
    assert "latin1.txt is not UTF-8 text (invalid byte at line 2)" in err


def test_corpus_too_small_for_one_batch(workdir):
    write_corpus(workdir / "small.txt", n_docs=4)
    err = _bad(
        workdir,
        "data=text",
        f"data.train_files=[{workdir / 'small.txt'}]",
        "trainer.batch_size=512",
        f"data.cache_dir={workdir / 'cache'}",
    ).stderr
    assert "fewer than one batch" in err and "trainer.batch_size=512" in err


def test_resume_path_that_is_not_a_checkpoint(workdir):
    (workdir / "not_a_ckpt").mkdir(exist_ok=True)
    err = _bad(workdir, *_data(workdir), f"trainer.resume={workdir / 'not_a_ckpt'}").stderr
    assert "is not a checkpoint" in err


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child before it runs: SIGINT at its default, as under a terminal's Ctrl-C. A test runner started in
    the background by a script inherits SIGINT ignored, and Python then raises no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interruptible(args: list[str], workdir: Path) -> subprocess.Popen:
    """``args`` started in ``workdir`` with its output piped, to be sent a SIGINT as a terminal's Ctrl-C."""
    return subprocess.Popen(
        args,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(workdir):
    run_dir = workdir / "interrupted"
    args = [
        sys.executable,
        "-m",
        "lmtrain",
        "pretrain",
        *TINY,
        *_data(workdir),
        "trainer.max_steps=100000",
        "trainer.log_every=1",
        "trainer.save_every=0",
        "trainer.eval_every=0",
        f"hydra.run.dir={run_dir}",
    ]
    proc = _interruptible(args, workdir)
    wait_for_metrics(run_dir)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"lmtrain resume {run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoints" / "last" / "trainer_state.pt").exists()
    status = json.loads((run_dir / "status.json").read_text())
    step = int((run_dir / "checkpoints" / "last").resolve().name.split("-")[1])
    assert (status["state"], status["signal"], status["step"]) == ("interrupted", "SIGINT", step)


def _ctrl_c_ignored() -> None:
    """In the child before it runs: SIGINT ignored, as a job a script starts in the background inherits it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_a_run_started_with_ctrl_c_ignored_keeps_training_and_still_stops_on_sigterm(workdir):
    run_dir = workdir / "background"
    args = [sys.executable, "-m", "lmtrain", "pretrain", *TINY, *_data(workdir), "trainer.max_steps=100000"]
    args += ["trainer.log_every=1", "trainer.save_every=0", "trainer.eval_every=0", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(
        args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_ignored
    )
    wait_for_metrics(run_dir)
    proc.send_signal(signal.SIGINT)
    logged = (run_dir / "metrics.jsonl").read_text().count("\n")
    wait_for_metrics(run_dir, events=logged + 3)
    assert proc.poll() is None  # Ctrl-C meant for the script that started it: the run goes on
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["signal"]) == ("interrupted", "SIGTERM")
    assert (run_dir / "checkpoints" / "last" / "trainer_state.pt").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_while_tokenizing_exits_130_with_one_line(workdir, tmp_path):
    args = [
        sys.executable,
        "-m",
        "lmtrain",
        "pretrain",
        *TINY,
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # the bundled corpus: seconds of tokenizing
    proc = _interruptible(args, workdir)
    for line in proc.stdout:
        if "tokenizing" in line or "training a" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().endswith("lmtrain pretrain: interrupted") and "Traceback" not in err


def test_prompt_values_are_quoted_for_hydra():
    from lmtrain.cli.main import quote_free_text

    assert quote_free_text(["prompt=The [MASK], it's hot!", "x=1"]) == ["prompt='The [MASK], it\\'s hot!'", "x=1"]
    assert quote_free_text(["prompt='already quoted'"]) == ["prompt='already quoted'"]


_AWKWARD_PROMPTS = [
    "${oc.env:HOME} ${price}",
    "C:\\temp\\new",
    "end\\",
    'it\'s "quoted"',
    "a\\'b",
    "\\${x}",
    "\\\\${x} and \\\\\\${y}",
    "[MASK], {a: 1}, x=y",
    "  spaced  ",
    "100$ {not} $ { }",
    "line one\nline two",
    "caf\u00e9 \u2014 \u65e5\u672c",
]


@pytest.mark.parametrize("text", _AWKWARD_PROMPTS)
def test_free_text_reaches_the_config_literally(text):
    from lmtrain.cli.main import quote_free_text
    from tests.conftest import compose_config

    assert compose_config("generate", quote_free_text([f"prompt={text}"])).prompt == text


def test_random_free_text_reaches_the_config_literally():
    import random

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from lmtrain.cli.main import quote_free_text

    # the two grammars composing applies: Hydra's override parser, then OmegaConf's resolution on access
    parser, node = OverridesParser.create(), OmegaConf.create({"prompt": None})
    rng = random.Random(0)
    alphabet = "\\'\"${}[],=:a b"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if not text.strip() or text == "???" or (len(text) > 1 and text[0] == text[-1] and text[0] in "'\""):
            continue  # blank, OmegaConf's missing value, or already quoted (unquoted once, by design)
        node.prompt = parser.parse_override(quote_free_text([f"prompt={text}"])[0]).value()
        assert node.prompt == text, (text, quote_free_text([f"prompt={text}"]))


def test_quoted_free_text_is_unquoted_once_then_literal():
    from lmtrain.cli.main import quote_free_text
    from tests.conftest import compose_config

    assert compose_config("generate", quote_free_text(["prompt='The fire'"])).prompt == "The fire"
    assert compose_config("generate", quote_free_text(["prompt='${oc.env:HOME}'"])).prompt == "${oc.env:HOME}"


def test_cfg_job_shows_a_free_text_prompt_without_resolving_it(tmp_path):
    out = run_cli("generate", "--cfg", "job", "prompt=${oc.env:HOME} C:\\temp", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "oc.env:HOME" in out.stdout and str(Path.home()) not in out.stdout

"""Prove the dependency floors of pyproject.toml: install each direct dependency at its floor, run lmtrain.

A fresh virtual environment (in a temporary folder) gets every ``[project] dependencies`` entry pinned
at its floor (``name>=X`` installs ``name==X``; pip picks the newest of everything else they need),
then lmtrain itself with ``--no-deps``, and runs tiny commands that reach every dependency: imports of
every module and of every name they take from another package, pretraining on the bundled corpus,
on a text file, on a ``datasets`` folder and on generated images (Pillow), GloVe (scipy, gensim),
fine-tuning (classification, NER with seqeval and its scikit-learn), export, pictures (Pillow), a model
named by a Hub id from a hand-made offline cache (huggingface_hub) and a 2-process FSDP pretrain under torchrun (gloo
on CPU). It prints one table and exits 1 if a step failed (2 for a bad option or pyproject entry).

    python scripts/dependency_floors.py                          # the floors, in a temporary venv
    python scripts/dependency_floors.py --override scipy==1.9.3  # try another version of one package
    python scripts/dependency_floors.py --steps import,pretrain --venv /tmp/floors  # quick, venv kept

Only wheels are installed, except the pure-Python packages published as source alone
(``SOURCE_ONLY``): a release without a wheel for this Python is not installable here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
SOURCE_ONLY = ("seqeval", "antlr4-python3-runtime")  # pure Python, published as source distributions only
_REQUIREMENT = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*(?P<floor>[0-9][0-9A-Za-z.]*)\s*(,\s*<[^,;]+)?")
TINY = [
    "debug=tiny",
    "trainer.progress=false",
    "trainer.max_steps=4",
    "trainer.log_every=1",
    "trainer.eval_every=2",
    "trainer.eval_batches=1",
    "trainer.save_every=4",
]
HUB_REPO, HUB_COMMIT = "org/tiny-bert", "a" * 40


class FloorsError(Exception):
    """A pyproject entry or an option this script cannot use (exit 2, with the message)."""


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: lower case, runs of - _ . as one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_floors(pyproject: Path) -> dict[str, str]:
    """``{name: floor}`` of every ``[project] dependencies`` entry of ``pyproject``.

    Raises:
        FloorsError: an entry without a ``>=`` floor (each direct dependency must have one to prove).
    """
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    floors = {}
    for entry in dependencies:
        match = _REQUIREMENT.fullmatch(entry.strip())
        if match is None:
            raise FloorsError(
                f"{pyproject}: dependency {entry!r} has no floor: write it as name>=version "
                "(optionally with ,<upper), so that this script can install that version."
            )
        floors[match["name"]] = match["floor"]
    return floors


def apply_overrides(floors: dict[str, str], overrides: list[str]) -> dict[str, str]:
    """``floors`` with each ``name==version`` of ``overrides`` in place of that package's floor (or added)."""
    pins = dict(floors)
    by_key = {normalise(name): name for name in pins}
    for override in overrides:
        name, sep, version = override.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise FloorsError(f"--override {override}: write it as name==version, e.g. scipy==1.9.3")
        pins[by_key.get(normalise(name), name.strip())] = version.strip()
    return pins


@dataclass
class Step:
    """One command of the proof, and what came of it."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 900
    result: str = "not run"
    seconds: float = 0.0
    tail: str = ""

    def run(self, cwd: Path) -> bool:
        """Run the command in ``cwd``; keep its result, time and (when it failed) the end of its output."""
        start = time.monotonic()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", **self.env}
        try:
            out = subprocess.run(self.argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=self.timeout)
            ok, output = out.returncode == 0, out.stdout + out.stderr
        except subprocess.TimeoutExpired as error:
            ok, output = False, f"timed out after {self.timeout} s\n{error.stderr or ''}"
        self.seconds = time.monotonic() - start
        self.result = "ok" if ok else "failed"
        (cwd / "logs").mkdir(exist_ok=True)
        (cwd / "logs" / f"{self.name}.log").write_text(output, encoding="utf-8", errors="replace")
        self.tail = "" if ok else "\n".join(output.strip().splitlines()[-25:])
        return ok


def install_steps(venv: Path, pins: dict[str, str], python: str, fresh: bool) -> list[Step]:
    """Make the venv (unless reused), install the pins (wheels only, but ``SOURCE_ONLY``), then lmtrain."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    only_binary = ["--only-binary=:all:", *(f"--no-binary={name}" for name in SOURCE_ONLY)]
    steps = [Step("venv", [python, "-m", "venv", str(venv)])] if fresh else []
    return steps + [
        Step(
            "install floors",
            [*pip, *only_binary, *(f"{name}=={version}" for name, version in pins.items())],
            timeout=3600,
        ),
        Step("install lmtrain", [*pip, "--no-deps", "--force-reinstall", str(REPO)]),
    ]


def write_inputs(work: Path) -> None:
    """The small corpus (a text file and the same as a ``datasets`` JSON-lines folder) the steps read."""
    rng = random.Random(0)
    words = [
        "farmer",
        "teacher",
        "pilot",
        "neighbour",
        "doctor",
        "child",
        "visited",
        "painted",
        "repaired",
        "sold",
        "found",
        "watched",
        "the",
        "old",
        "barn",
        "red",
        "car",
        "small",
        "boat",
        "long",
        "fence",
        "new",
        "house",
        "garden",
        "morning",
        "storm",
        "lunch",
        "care",
        "sunday",
    ]  # noqa: E501
    docs = [" ".join(" ".join(rng.choices(words, k=8)) + "." for _ in range(6)) for _ in range(60)]
    (work / "corpus.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    (work / "hf_corpus").mkdir(exist_ok=True)
    (work / "hf_corpus" / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))


def put_in_hub_cache(exported: Path, home: Path) -> None:
    """Copy the exported model into ``home/hub`` as huggingface_hub lays out a downloaded snapshot."""
    repo_dir = home / "hub" / ("models--" + HUB_REPO.replace("/", "--"))
    shutil.copytree(exported, repo_dir / "snapshots" / HUB_COMMIT)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(HUB_COMMIT)


# Every module of lmtrain, then every name each of its `from X import Y` lines takes from another package
# (most are imported inside the function that needs them), but the optional extras'.
IMPORT_ALL = """
import ast, importlib, pathlib, pkgutil, lmtrain
OPTIONAL = ("wandb", "mlflow", "torch.utils.tensorboard")
for info in pkgutil.walk_packages(lmtrain.__path__, "lmtrain."):
    importlib.import_module(info.name)
for source in sorted(pathlib.Path(lmtrain.__file__).parent.rglob("*.py")):
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            imports = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            imports = [(alias.name, None) for alias in node.names]
        else:
            continue
        for module, name in imports:
            if module == "lmtrain" or module.startswith(("lmtrain.", *OPTIONAL)):
                continue
            imported = importlib.import_module(module)
            if name and not hasattr(imported, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ModuleNotFoundError:
                    raise ImportError(f"{source}: cannot import {name} from {module}") from None
"""


def command_steps(venv: Path, work: Path) -> list[Step]:
    """The lmtrain commands of the proof, in order (later ones read the runs of earlier ones)."""
    bin_dir, runs = venv / "bin", work / "runs"
    lmtrain = [str(bin_dir / "lmtrain")]
    cache = f"data.cache_dir={work / 'cache'}"
    finetune = [
        *lmtrain,
        "finetune",
        "trainer.progress=false",
        "trainer.max_steps=4",
        "trainer.batch_size=8",
        "trainer.eval_every=2",
        "data.max_seq_len=32",
    ]
    distributed = [
        "debug=tiny",
        "trainer.progress=false",
        "data=text",
        f"data.train_files=[{work / 'corpus.txt'}]",
        cache,
        "trainer.max_steps=4",
        "trainer.batch_size=4",
        "trainer.eval_every=0",
        "trainer.save_every=4",
        "trainer.strategy=fsdp",
        f"hydra.run.dir={runs / 'fsdp'}",
    ]
    hub_env = {"HF_HOME": str(work / "hf_home"), "HF_HUB_OFFLINE": "1"}
    return [
        Step("import", [str(bin_dir / "python"), "-c", IMPORT_ALL]),
        Step("pretrain", [*lmtrain, "pretrain", *TINY, "data=lee", cache, f"hydra.run.dir={runs / 'pretrain'}"]),
        Step(
            "pretrain data=text",
            [
                *lmtrain,
                "pretrain",
                *TINY,
                "model=gpt",
                "data=text",
                f"data.train_files=[{work / 'corpus.txt'}]",
                cache,
                f"hydra.run.dir={runs / 'gpt'}",
            ],
        ),
        Step(
            "pretrain data=hf",
            [
                *lmtrain,
                "pretrain",
                *TINY,
                "data=hf",
                f"data.path={work / 'hf_corpus'}",
                cache,
                f"hydra.run.dir={runs / 'hf'}",
            ],
            env={"HF_HOME": str(work / "hf_home")},
        ),
        Step(
            "pretrain albef (images)",
            [
                *lmtrain,
                "pretrain",
                *TINY,
                "model=albef",
                "data=shapes",
                "data.shapes_train=64",
                "data.shapes_eval=16",
                f"hydra.run.dir={runs / 'albef'}",
            ],
        ),
        Step(
            "embed glove",
            [
                *lmtrain,
                "embed",
                "method=glove",
                "embed.corpus=lee",
                "embed.epochs=1",
                "embed.vector_size=16",
                f"hydra.run.dir={runs / 'glove'}",
            ],
        ),
        Step(
            "finetune classification",
            [*finetune, "task=classification", f"init={runs / 'pretrain'}", f"hydra.run.dir={runs / 'classification'}"],
        ),
        Step("finetune ner", [*finetune, "task=ner", f"init={runs / 'pretrain'}", f"hydra.run.dir={runs / 'ner'}"]),
        Step("export", [*lmtrain, "export", f"ckpt={runs / 'pretrain'}", f"out={work / 'exported'}"]),
        Step("plot curves", [*lmtrain, "plot", str(runs / "pretrain"), f"out={work / 'curves.png'}", "svg=true"]),
        Step(
            "plot confusion",
            [*lmtrain, "plot", str(runs / "classification"), "chart=confusion", f"out={work / 'confusion.png'}"],
        ),
        Step(
            "hub cache model", [*finetune, "task=ner", f"init={HUB_REPO}", f"hydra.run.dir={runs / 'hub'}"], env=hub_env
        ),
        Step(
            "fsdp 2 processes",
            [
                str(bin_dir / "torchrun"),
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "lmtrain",
                "pretrain",
                *distributed,
            ],
        ),
    ]


def print_table(steps: list[Step], pins: dict[str, str]) -> None:
    """The pins, then one line per step (name, ok / failed / not run, seconds), then each failure's output."""
    print("pins: " + " ".join(f"{name}=={version}" for name, version in pins.items()))
    width = max(len(step.name) for step in steps)
    print(f"{'step':<{width}}  result   seconds")
    for step in steps:
        print(f"{step.name:<{width}}  {step.result:<7}  {step.seconds:7.1f}")
    for step in steps:
        if step.tail:
            print(f"\n--- {step.name} failed:\n{step.tail}")


def prove(args: argparse.Namespace, work: Path) -> list[Step]:
    """Install the pins into the venv and run the chosen steps in ``work``; every step, run or not."""
    pins = apply_overrides(read_floors(REPO / "pyproject.toml"), args.override)
    venv = Path(args.venv) if args.venv else work / "venv"
    steps = install_steps(venv, pins, args.python, fresh=not (venv / "bin" / "python").exists())
    commands = command_steps(venv, work)
    if args.steps:
        wanted = {name.strip() for name in args.steps.split(",")}
        unknown = wanted - {step.name for step in commands}
        if unknown:
            raise FloorsError(
                f"--steps: no step {', '.join(sorted(unknown))}; the steps are "
                + ", ".join(step.name for step in commands)
            )
        commands = [step for step in commands if step.name in wanted]
    steps += commands
    write_inputs(work)
    for step in steps:
        if step.name == "hub cache model" and (work / "exported").is_dir():
            put_in_hub_cache(work / "exported", work / "hf_home")
        if not step.run(work) and step.name.startswith(("venv", "install")):
            break
    print_table(steps, pins)
    return steps


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the proof in a temporary folder (kept with --keep) and return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (venv, runs, logs/)")
    parser.add_argument("--python", default=sys.executable, help="the Python that makes the venv")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="NAME==VERSION",
        help="install this version instead of NAME's floor (repeatable)",
    )
    parser.add_argument("--venv", help="make (or reuse) the venv here and keep it, e.g. to try versions in turn")
    parser.add_argument("--steps", help="run only these steps (comma separated names from the table)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lmtrain-floors-"))
    try:
        steps = prove(args, work)
    except FloorsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(step.result == "ok" for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Group cli: what was typed is what runs, or it is refused with a reason (issue 25, items 1, 4, 5, 7, 8).

Data keys the chosen source ignores, `--key value` habits and typos, suggestions that must run as printed,
`evaluate` on the run's own data, `finetune` without `init=` saying which run it took.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, last_line, refused


def _refused_before_work(ws: Workspace, name: str, fragment: str, *args: str) -> Outcome:
    """``lmtrain <args>`` exits 2 naming ``fragment``, and makes no run folder."""
    run = ws.root / name
    proc = ws.lmtrain(*args, f"hydra.run.dir={run}")
    return refused(proc, fragment, not run.exists())


def train_files_without_data_text(ws: Workspace) -> Outcome:
    (ws.root / "my.txt").write_text("Some text of my own.\n" * 50)
    return _refused_before_work(
        ws, "own_text", "Choose data=text", "pretrain", *TINY, *ws.data, "data.train_files=[my.txt]"
    )


def dataset_path_without_source_hf(ws: Workspace) -> Outcome:
    return _refused_before_work(ws, "ner_hf", "data.source=hf", "finetune", "task=ner", "data.path=conll2003")


def key_the_objective_ignores(ws: Workspace) -> Outcome:
    return _refused_before_work(
        ws, "gpt_dupe", "objective=clm would ignore it", "pretrain", "model=gpt", *TINY, *ws.data, "data.dupe_factor=3"
    )


def key_of_another_embedding_method(ws: Workspace) -> Outcome:
    return _refused_before_work(
        ws, "glove_sg", "the word2vec word-vector method reads it", "embed", "method=glove", "embed.sg=1"
    )


def plus_key_the_schema_lacks(ws: Workspace) -> Outcome:
    return _refused_before_work(
        ws, "plus_key", "Did you mean trainer.max_steps?", "pretrain", *TINY, *ws.data, "+trainer.max_step=5"
    )


def double_dash_option(ws: Workspace) -> Outcome:
    return _refused_before_work(
        ws, "dashes", "`--max_steps 5` is `trainer.max_steps=5`", "pretrain", "--max_steps", "5"
    )


def misspelt_option(ws: Workspace) -> Outcome:
    return _refused_before_work(ws, "bret", "Did you mean model=bert?", "pretrain", "model=bret")


def finetune_debug_tiny(ws: Workspace) -> Outcome:
    proc = ws.lmtrain(
        "finetune",
        "task=ner",
        "debug=tiny",
        "init=scratch",
        "trainer.progress=false",
        f"hydra.run.dir={ws.root / 'ft_tiny'}",
    )
    summary = ws.root / "ft_tiny" / "summary.json"
    steps = json.loads(summary.read_text()).get("steps") if summary.exists() else None
    return Outcome(
        proc.returncode,
        f"trained {steps} steps" if proc.returncode == 0 else last_line(proc),
        proc.returncode == 0 and steps == 20,
    )


def evaluate_uses_the_run_s_data(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("evaluate", f"ckpt={ws.root / 'finished'}", f"hydra.run.dir={ws.root / 'eval_own'}")
    summary_file = ws.root / "eval_own" / "summary.json"
    if proc.returncode != 0 or not summary_file.exists():
        return Outcome(proc.returncode, last_line(proc), False)
    summary = json.loads(summary_file.read_text())
    data = summary["config"]["data"]
    said = f"data {summary['data']} ({summary['data_from']}), max_seq_len {data['max_seq_len']}"
    held = (
        summary["data_from"] == "run"
        and summary["data"] == "lee_wiki"
        and data["max_seq_len"] == 64
        and "WARNING" not in proc.stdout + proc.stderr
    )
    return Outcome(proc.returncode, said, held)


def next_commands_run_in_bash(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "model=gpt", *TINY, *ws.data, f"hydra.run.dir={ws.root / 'next of mine'}")
    lines = proc.stderr.split("Next:")[-1].splitlines()[1:] if "Next:" in proc.stderr else []
    lines = [line.strip() for line in lines if line.startswith("  ")]
    stub = 'lmtrain() { for a in "$@"; do case "$a" in *"<"*|*">"*) exit 9;; esac; done; }; '
    broken = [
        line
        for line in lines
        if subprocess.run(["bash", "-c", stub + line], capture_output=True, cwd=ws.root).returncode != 0
    ]
    return Outcome(
        proc.returncode,
        f"{len(lines)} suggestions, {len(broken)} broken {broken[:1]}",
        proc.returncode == 0 and len(lines) >= 5 and not broken,
    )


def finetune_states_its_backbone(ws: Workspace) -> Outcome:
    project = ws.root / "project"
    (project / "outputs" / "pretrain").mkdir(parents=True)
    os.symlink(ws.root / "finished", project / "outputs" / "pretrain" / "linked_from_elsewhere")
    args = [sys.executable, "-m", "lmtrain", "finetune", "task=ner", "debug=tiny", "trainer.progress=false"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    linked = subprocess.run(
        [*args, f"hydra.run.dir={project / 'refused'}"], cwd=project, capture_output=True, text=True, env=env
    )
    if linked.returncode != 2 or "no pretrained backbone" not in linked.stderr:
        return Outcome(linked.returncode, "took a run linked in from elsewhere", False)
    shutil.copytree(ws.root / "finished", project / "outputs" / "pretrain" / "own", symlinks=True)
    proc = subprocess.run(
        [*args, f"hydra.run.dir={project / 'ft'}"], cwd=project, capture_output=True, text=True, env=env
    )
    first = next((line for line in proc.stdout.splitlines() if re.match(r"\[.*\]\[lmtrain", line)), "")
    summary = project / "ft" / "summary.json"
    chosen = json.loads(summary.read_text()).get("init_chosen", "") if summary.exists() else ""
    held = proc.returncode == 0 and "init not given" in first and "outputs/pretrain/own" in chosen
    return Outcome(proc.returncode, chosen[:120] or last_line(proc), held)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "1 data.train_files without data=text": train_files_without_data_text,
    "1 data.path without data.source=hf": dataset_path_without_source_hf,
    "1 a data key the objective ignores": key_the_objective_ignores,
    "1 a +key the schema lacks": plus_key_the_schema_lacks,
    "1 embed.sg with method=glove": key_of_another_embedding_method,
    "4 every Next: line runs in bash": next_commands_run_in_bash,
    "5 evaluate reads the run's own data": evaluate_uses_the_run_s_data,
    "7 --max_steps 5 in Hydra's form": double_dash_option,
    "7 model=bret: did you mean bert": misspelt_option,
    "7 finetune debug=tiny": finetune_debug_tiny,
    "8 finetune says which backbone": finetune_states_its_backbone,
}

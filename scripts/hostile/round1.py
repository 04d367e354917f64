"""Round 1: overwrite, locks, resume checks, pickles, damaged checkpoints, full disk, signals, bad values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from hostile.common import TINY, Outcome, Workspace, digest, last_line, refused


def overwrite_finished_run(ws: Workspace) -> Outcome:
    run = ws.fresh_run("overwrite")
    before = digest(run)
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={run}")
    return refused(proc, "already holds a finished run", digest(run) == before)


def two_processes_one_directory(ws: Workspace) -> Outcome:
    run = ws.root / "busy"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            *TINY,
            *ws.data,
            "trainer.max_steps=100000",
            "trainer.save_every=0",
            f"hydra.run.dir={run}",
        ],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "metrics.jsonl").exists():
            time.sleep(0.2)
        proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={run}")
        return refused(proc, f"in use by process {first.pid}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def killed_holder_frees_directory(ws: Workspace) -> Outcome:
    run = ws.root / "busy"  # the first process of the previous probe was killed with SIGKILL
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, f"hydra.run.dir={run}", "trainer.resume=auto")
    said = "continued the run after its holder was killed" if proc.returncode == 0 else last_line(proc)
    return Outcome(proc.returncode, said, proc.returncode == 0)


def incompatible_resume(ws: Workspace) -> Outcome:
    run = ws.fresh_run("incompatible")
    before = digest(run)
    proc = ws.lmtrain("pretrain", "model=gpt", *TINY, *ws.data, f"hydra.run.dir={run}", "trainer.resume=auto")
    return refused(proc, "cannot continue", digest(run) == before)


def resume_other_size(ws: Workspace) -> Outcome:
    run = ws.fresh_run("size")
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "model.d_model=64", f"hydra.run.dir={run}", "trainer.resume=auto")
    return refused(proc, "model.d_model: 32 -> 64")


def extend_finished_run(ws: Workspace) -> Outcome:
    run = ws.fresh_run("extend")
    proc = ws.lmtrain("resume", str(run), "trainer.max_steps=6")
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lr_after = [e["train/lr"] for e in events if e.get("step", 0) > 4 and "train/lr" in e]
    decays = bool(lr_after) and lr_after[0] > 0.0 and lr_after == sorted(lr_after, reverse=True) and lr_after[-1] == 0
    held = proc.returncode == 0 and decays and (run / ".hydra" / "resume-1").is_dir()
    return Outcome(proc.returncode, f"lr after the old horizon: {lr_after}", held)


def resume_without_run_dir(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", *TINY, *ws.data, "trainer.resume=auto")
    return refused(proc, "needs the run directory to continue")


def truncated_weights(ws: Workspace) -> Outcome:
    run = ws.fresh_run("truncated")
    weights = run / "checkpoints" / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    proc = ws.lmtrain("evaluate", f"ckpt={run}", *ws.data)
    return refused(proc, "model.safetensors is unreadable")


def resume_skips_damaged_newest(ws: Workspace) -> Outcome:
    run = ws.fresh_run("fallback")
    state = run / "checkpoints" / "step-4" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    (run / "summary.json").unlink()
    proc = ws.lmtrain("resume", str(run))
    text = proc.stdout + proc.stderr
    return Outcome(
        proc.returncode,
        "warned and resumed from step-2" if "resuming from" in text else last_line(proc),
        proc.returncode == 0 and "step-2" in text and "damaged" in text,
    )


def pickled_trainer_state(ws: Workspace) -> Outcome:
    run = ws.fresh_run("pickled")
    marker = ws.root / "pickle-ran"
    code = (
        f"import os, torch\nclass E:\n    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'train': E()}}, '{run / 'checkpoints' / 'step-4' / 'trainer_state.pt'}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    (run / "summary.json").unlink()
    proc = ws.lmtrain(
        "pretrain",
        *TINY,
        *ws.data,
        f"hydra.run.dir={run}",
        f"trainer.resume={run}/checkpoints/step-4",
        "trainer.max_steps=6",
    )
    return refused(proc, "refusing to unpickle", not marker.exists() and "weights_only=False" not in proc.stderr)


def sigterm_saves(ws: Workspace) -> Outcome:
    run = ws.root / "preempted"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lmtrain",
            "pretrain",
            *TINY,
            *ws.data,
            "trainer.max_steps=100000",
            "trainer.save_every=0",
            f"hydra.run.dir={run}",
        ],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (
        (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 2
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    saved = (run / "checkpoints" / "last" / "trainer_state.pt").exists()
    return Outcome(
        proc.returncode,
        " ".join(err.strip().splitlines()[-2:])[:160],
        proc.returncode == 143 and saved and "lmtrain resume" in err,
    )


def bad_prompt_line(ws: Workspace) -> Outcome:
    prompts = ws.root / "prompts.txt"
    prompts.write_bytes(b"The fire\ncaf\xe9\n")
    proc = ws.lmtrain(
        "generate", f"ckpt={ws.root / 'finished'}", f"prompts_file={prompts}", f"hydra.run.dir={ws.root / 'gen'}"
    )
    return refused(proc, "line 2: not UTF-8", not (ws.root / "gen" / "generations.jsonl").exists())


def nsp_max_seq_len_1(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "model=bert", "data.max_seq_len=1", timeout=120)
    return refused(proc, "data.max_seq_len=1: must be >= 5")


def batch_size_0(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("pretrain", "trainer.batch_size=0", timeout=120)
    return refused(proc, "trainer.batch_size=0: must be >= 1")


def empty_label(ws: Workspace) -> Outcome:
    table = ws.root / "labels.tsv"
    table.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\nmeh\t\n")
    proc = ws.lmtrain("finetune", "task=classification", "init=scratch", f"data.train_file={table}")
    return refused(proc, "line 4: empty label")


def caption_outside_root(ws: Workspace) -> Outcome:
    captions = ws.root / "captions.csv"
    captions.write_text("image,caption\n../../etc/passwd,a photo\n")
    proc = ws.lmtrain("pretrain", "model=albef", "data=captions", f"data.train_files=[{captions}]")
    return refused(proc, "leads outside data.image_root")


def literal_prompt(ws: Workspace) -> Outcome:
    proc = ws.lmtrain("generate", "--cfg", "job", "prompt=${oc.env:HOME} C:\\temp\\new")
    held = (
        proc.returncode == 0 and "C:\\temp\\new" in proc.stdout and os.environ.get("HOME", "/root") not in proc.stdout
    )
    return Outcome(
        proc.returncode, next((line.strip() for line in proc.stdout.splitlines() if "prompt:" in line), ""), held
    )


def pickled_vectors(ws: Workspace) -> Outcome:
    marker, vectors = ws.root / "vectors-ran", ws.root / "vectors.txt"
    code = (
        f"import os, pickle\nclass E:\n    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"open('{vectors}', 'wb').write(pickle.dumps(E()))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = ws.lmtrain("embed", "method=load", f"path={vectors}")
    return refused(proc, "allow_pickle", not marker.exists())


def disk_full(ws: Workspace) -> Outcome:
    def limit_file_size() -> None:  # a full disk, as a file-size limit: writes past 200 kB fail with EFBIG
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    run = ws.root / "full-disk"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lmtrain", "pretrain", *TINY, *ws.data, f"hydra.run.dir={run}"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        preexec_fn=limit_file_size,
    )
    return refused(proc, "MiB are free", not list((run / "checkpoints").glob(".*")))


def huge_single_line(ws: Workspace) -> Outcome:
    text = ws.root / "one-line.txt"
    text.write_text(" ".join(["The farmer sold the old barn after the storm."] * 50_000) + "\n")  # 2.3M characters
    proc = ws.lmtrain(
        "pretrain",
        *TINY,
        "trainer.max_steps=1",
        "data=text",
        f"data.train_files=[{text}]",
        f"data.cache_dir={ws.root / 'cache-long'}",
        f"hydra.run.dir={ws.root / 'long'}",
    )
    said = next((line for line in (proc.stdout + proc.stderr).splitlines() if "split into" in line), last_line(proc))
    return Outcome(proc.returncode, " ".join(said.split())[-160:], proc.returncode == 0 and "split into" in said)


KILL_RANK_1_ONCE = """
import os, signal
from lmtrain.cli.main import main
from lmtrain.training.trainer import Trainer

original = Trainer._train_step


def step(self, sums):  # the first time round, rank 1 dies in step 6 (after the step-4 checkpoint)
    original(self, sums)
    if self.state.step == 6 and self.dist.rank == 1 and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
        os.kill(os.getpid(), signal.SIGKILL)


Trainer._train_step = step
main()
"""


def elastic_restart(ws: Workspace) -> Outcome:
    script, run = ws.root / "kill_rank_1_once.py", ws.root / "elastic"
    script.write_text(KILL_RANK_1_ONCE)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "--max-restarts=1",
            str(script),
            "pretrain",
            *TINY,
            *ws.data,
            "trainer.max_steps=8",
            "trainer.save_every=4",
            "trainer.batch_size=4",
            f"hydra.run.dir={run}",
        ],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    steps = (
        sorted(
            json.loads(line)["step"]
            for line in (run / "metrics.jsonl").read_text().splitlines()
            if "train/loss" in line
        )
        if (run / "metrics.jsonl").exists()
        else []
    )
    restarted = "continuing from the newest intact checkpoint" in proc.stdout + proc.stderr
    return Outcome(
        proc.returncode,
        f"restarted: {restarted}, logged steps {steps}",
        proc.returncode == 0 and restarted and steps == list(range(1, 9)),
    )


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "1 finished run not overwritten": overwrite_finished_run,
    "2 second process refused": two_processes_one_directory,
    "2 killed holder frees the lock": killed_holder_frees_directory,
    "3 refused resume changes nothing": incompatible_resume,
    "4 resume with another size": resume_other_size,
    "4 extending continues the LR schedule": extend_finished_run,
    "5 resume=auto without run dir": resume_without_run_dir,
    "7 pickled vectors.txt": pickled_vectors,
    "8 pickled trainer_state.pt": pickled_trainer_state,
    "10 truncated model.safetensors": truncated_weights,
    "10 resume skips a damaged newest": resume_skips_damaged_newest,
    "11 disk full during a save": disk_full,
    "12 SIGTERM saves and exits": sigterm_saves,
    "6 bad prompt line, nothing half-done": bad_prompt_line,
    "9 BERT pairs with max_seq_len=1": nsp_max_seq_len_1,
    "9 trainer.batch_size=0": batch_size_0,
    "13 empty label cell": empty_label,
    "14 caption image outside the root": caption_outside_root,
    "15 prompt kept literally": literal_prompt,
    "16 a 2.3M-character single line": huge_single_line,
    "elastic restart after a SIGKILL": elastic_restart,
}

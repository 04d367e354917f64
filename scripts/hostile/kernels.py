"""``trainer.cpu_kernels=auto``'s memo and ``trainer.precision=bf16`` on CPU: a memo that is damaged, a link, a
folder or hand-edited gets a warning and a safe choice, never a traceback, and is never written through; bf16 on
a CPU without native bf16 runs with a warning naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line

NOT_USED = "is not used as it is"
# bf16 on a CPU without native bf16, played by replacing the check before the command line runs
NO_NATIVE_BF16 = (
    "import sys; import lmtrain.training.precision as p; p.cpu_bf16_support = lambda: None; "
    "from lmtrain.cli.main import main; sys.argv[0] = 'lmtrain'; sys.exit(main())"
)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", "HOME": str(home)}


def _pretrain(
    ws: Workspace, name: str, *extra: str, launcher: tuple[str, ...] = ("-m", "lmtrain")
) -> subprocess.CompletedProcess:
    """A tiny ``lmtrain pretrain`` with its own home folder (``ws.root/name-home``), so its memo is the probe's."""
    home = ws.root / f"{name}-home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [
            sys.executable,
            *launcher,
            "pretrain",
            *TINY,
            *ws.data,
            "trainer.preflight=false",
            *extra,
            f"hydra.run.dir={ws.root / name}",
        ],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(home),
    )


def _memo(ws: Workspace, name: str) -> Path:
    path = ws.root / f"{name}-home" / ".cache" / "lmtrain" / "cpu_kernels.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _ran_with_warning(proc: subprocess.CompletedProcess, fragment: str) -> bool:
    output = proc.stdout + proc.stderr
    return proc.returncode == 0 and fragment in output and "Traceback" not in output


def _said(proc: subprocess.CompletedProcess, fragment: str) -> str:
    output = proc.stdout + proc.stderr
    line = next((line for line in output.splitlines() if fragment in line), "")
    return " ".join(line.split(" - ", 1)[-1].split())[:150] or last_line(proc)


def truncated_memo(ws: Workspace) -> Outcome:
    memo = _memo(ws, "memo-truncated")
    memo.write_text('{"Intel | torch 2 | 1 threads": {"kern')
    proc = _pretrain(ws, "memo-truncated")
    intact = memo.read_text() == '{"Intel | torch 2 | 1 threads": {"kern'
    return Outcome(proc.returncode, _said(proc, NOT_USED), _ran_with_warning(proc, NOT_USED) and intact)


def symlinked_memo(ws: Workspace) -> Outcome:
    target = ws.root / "someone-elses.json"
    target.write_text("{}")
    memo = _memo(ws, "memo-link")
    memo.symlink_to(target)
    proc = _pretrain(ws, "memo-link")
    intact = memo.is_symlink() and target.read_text() == "{}"
    return Outcome(proc.returncode, _said(proc, NOT_USED), _ran_with_warning(proc, "symbolic link") and intact)


def memo_is_a_folder(ws: Workspace) -> Outcome:
    memo = _memo(ws, "memo-folder")
    memo.mkdir()
    proc = _pretrain(ws, "memo-folder")
    return Outcome(proc.returncode, _said(proc, NOT_USED), _ran_with_warning(proc, NOT_USED) and memo.is_dir())


def memo_names_unknown_kernels(ws: Workspace) -> Outcome:
    home = ws.root / "memo-unknown-home"
    home.mkdir(exist_ok=True)
    key = subprocess.run(
        [sys.executable, "-c", "from lmtrain.kernels.memo import machine_key; print(machine_key())"],
        capture_output=True,
        text=True,
        env=_env(home),
    ).stdout.strip()
    memo = _memo(ws, "memo-unknown")
    memo.write_text(json.dumps({key: {"kernels": "mkl-turbo", "why": "hand-edited"}}))
    proc = _pretrain(ws, "memo-unknown")
    replaced = json.loads(memo.read_text()).get(key, {}).get("kernels") in ("onednn", "torch")
    fragment = "names CPU kernels 'mkl-turbo'"
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and replaced)


def bf16_without_native_support(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "bf16-emulated", "trainer.precision=bf16", launcher=("-c", NO_NATIVE_BF16))
    fragment = "trainer.precision=bf16 on a CPU without native bf16 arithmetic"
    done = (ws.root / "bf16-emulated" / "summary.json").is_file()
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and done)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "a truncated cpu_kernels memo": truncated_memo,
    "a cpu_kernels memo that is a symlink": symlinked_memo,
    "a cpu_kernels memo that is a folder": memo_is_a_folder,
    "a hand-edited memo naming unknown kernels": memo_names_unknown_kernels,
    "bf16 on a CPU without native bf16": bf16_without_native_support,
}

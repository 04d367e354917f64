"""``trainer.cpu_kernels`` and ``trainer.precision=bf16`` on CPU: a memo of ``auto`` that is damaged, a link, a
folder or hand-edited gets a warning and a safe choice, never a traceback, and is never written through; an
earlier lmtrain's memo saying ``torch`` is read as ``torch-matmul`` and checked again; ``torch-matmul`` runs from
the command line and a misspelling of it is refused naming the choices; bf16 on a CPU without native bf16 runs
with a warning naming the key; a user's own ``MALLOC_*`` setting is left as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hostile.common import TINY, Outcome, Workspace, last_line, refused

NOT_USED = "is not used as it is"
# bf16 on a CPU without native bf16, played by replacing the check before the command line runs
NO_NATIVE_BF16 = (
    "import sys; import lmtrain.training.precision as p; p.cpu_bf16_support = lambda: None; "
    "from lmtrain.cli.main import main; sys.argv[0] = 'lmtrain'; sys.exit(main())"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", "HOME": str(home), **extra}
    env.pop("XDG_CACHE_HOME", None)  # the memo in this home's ~/.cache/lmtrain
    return env


def _pretrain(
    ws: Workspace,
    name: str,
    *extra: str,
    launcher: tuple[str, ...] = ("-m", "lmtrain"),
    env: dict[str, str] | None = None,
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
        env=_env(home, **(env or {})),
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


def symlinked_memo_read_by_generate(ws: Workspace) -> Outcome:
    target = ws.root / "someone-elses-too.json"
    target.write_text("{}")
    memo = _memo(ws, "memo-link-generate")
    memo.symlink_to(target)
    proc = subprocess.run(
        [sys.executable, "-m", "lmtrain", "generate", f"ckpt={ws.root / 'finished'}", "prompt=The [MASK] fell."],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(ws.root / "memo-link-generate-home"),
    )
    intact = memo.is_symlink() and target.read_text() == "{}"
    return Outcome(proc.returncode, _said(proc, NOT_USED), _ran_with_warning(proc, "symbolic link") and intact)


def _machine_key(ws: Workspace, name: str) -> str:
    """The memo's key for this machine, as the probe's ``lmtrain`` runs compute it."""
    home = ws.root / f"{name}-home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", "from lmtrain.kernels.memo import machine_key; print(machine_key())"],
        capture_output=True,
        text=True,
        env=_env(home),
    ).stdout.strip()


def memo_names_unknown_kernels(ws: Workspace) -> Outcome:
    key = _machine_key(ws, "memo-unknown")
    memo = _memo(ws, "memo-unknown")
    memo.write_text(json.dumps({key: {"kernels": "mkl-turbo", "why": "hand-edited"}}))
    proc = _pretrain(ws, "memo-unknown")
    replaced = json.loads(memo.read_text()).get(key, {}).get("kernels") in ("onednn", "torch-matmul")
    fragment = "names CPU kernels 'mkl-turbo'"
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and replaced)


def earlier_memo_saying_torch(ws: Workspace) -> Outcome:
    key = _machine_key(ws, "memo-earlier")
    memo = _memo(ws, "memo-earlier")
    earlier = {"kernels": "torch", "why": "measured by an earlier lmtrain", "decided": "2026-11-30", "reviews": 4}
    memo.write_text(json.dumps({key: earlier}))
    proc = _pretrain(ws, "memo-earlier", "model.dropout=0.1")
    summary = ws.root / "memo-earlier" / "summary.json"
    ran = summary.is_file() and json.loads(summary.read_text()).get("cpu_kernels") == "torch-matmul"
    entry = json.loads(memo.read_text()).get(key, {})
    checked_again = entry.get("kernels") == "torch-matmul" and entry.get("reviews") == 1 and entry.get("probe") == 2
    fragment = "as torch (the products of torch-matmul): checked again by the next runs"
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and ran and checked_again)


def torch_matmul_from_the_command_line(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "torch-matmul", "trainer.cpu_kernels=torch-matmul", "model.dropout=0.1")
    summary = ws.root / "torch-matmul" / "summary.json"
    ran = summary.is_file() and json.loads(summary.read_text()).get("cpu_kernels") == "torch-matmul"
    fragment = "CPU kernels: torch-matmul (trainer.cpu_kernels=torch-matmul)"
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and ran)


def torch_matmul_misspelt(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "torch-matmul-misspelt", "trainer.cpu_kernels=torch_matmul")
    fragment = "trainer.cpu_kernels=torch_matmul: must be one of auto | onednn | torch-matmul | torch"
    return refused(proc, fragment, intact=not (ws.root / "torch-matmul-misspelt" / "checkpoints").exists())


def bf16_without_native_support(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "bf16-emulated", "trainer.precision=bf16", launcher=("-c", NO_NATIVE_BF16))
    fragment = "trainer.precision=bf16 on a CPU without native bf16 arithmetic"
    done = (ws.root / "bf16-emulated" / "summary.json").is_file()
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and done)


def users_own_malloc_setting(ws: Workspace) -> Outcome:
    proc = _pretrain(ws, "malloc-arena", "model.dropout=0.1", env={"MALLOC_ARENA_MAX": "2"})
    fragment = "CPU memory: left as MALLOC_ARENA_MAX sets it"
    done = (ws.root / "malloc-arena" / "summary.json").is_file()
    return Outcome(proc.returncode, _said(proc, fragment), _ran_with_warning(proc, fragment) and done)


PROBES: dict[str, Callable[[Workspace], Outcome]] = {
    "a truncated cpu_kernels memo": truncated_memo,
    "a cpu_kernels memo that is a symlink": symlinked_memo,
    "a cpu_kernels memo that is a folder": memo_is_a_folder,
    "a cpu_kernels memo that is a symlink, read by generate (forward-only entry)": symlinked_memo_read_by_generate,
    "a hand-edited memo naming unknown kernels": memo_names_unknown_kernels,
    "an earlier lmtrain's settled memo saying torch": earlier_memo_saying_torch,
    "trainer.cpu_kernels=torch-matmul on the command line": torch_matmul_from_the_command_line,
    "trainer.cpu_kernels=torch_matmul (misspelt)": torch_matmul_misspelt,
    "bf16 on a CPU without native bf16": bf16_without_native_support,
    "the user's own glibc malloc setting (MALLOC_ARENA_MAX)": users_own_malloc_setting,
}

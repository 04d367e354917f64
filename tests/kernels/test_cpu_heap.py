"""Freed CPU memory kept for reuse: fewer page faults for a training loop's tensors; the user's choice left alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import lmtrain.kernels.cpu.heap as heap
from lmtrain.kernels import keep_freed_cpu_memory

# Rounds of 25 tensors of 8 MiB made and freed, as a training step makes and frees its activations: the
# minor page faults of the rounds after the first (200 MiB freed at once passes glibc's trim threshold).
ROUNDS = """
import json, resource, sys, torch
if sys.argv[1] == "keep":
    from lmtrain.kernels import keep_freed_cpu_memory
    print(keep_freed_cpu_memory(), file=sys.stderr)
def one_round():
    tensors = [torch.ones(2048, 1024) for _ in range(25)]
    del tensors
one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    one_round()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def page_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_kept_memory_spares_the_page_faults_of_remade_tensors():
    default, kept = page_faults("default"), page_faults("keep")
    assert default > 20_000  # glibc hands the freed 200 MiB back: 4 rounds fault much of it in again
    assert kept * 10 < default


@pytest.mark.parametrize("variable, value", [("MALLOC_ARENA_MAX", "2"), ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")])
def test_the_users_own_allocator_settings_are_left_alone(monkeypatch, variable, value):
    monkeypatch.setitem(heap._state, "outcome", None)
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(heap, "_set_thresholds", lambda: pytest.fail("mallopt called over the user's setting"))
    assert keep_freed_cpu_memory() == f"left as {variable} sets it"
    assert keep_freed_cpu_memory() == f"left as {variable} sets it"  # decided once per process


def test_an_empty_ld_preload_is_no_choice(monkeypatch):
    monkeypatch.setitem(heap._state, "outcome", None)
    for name in [n for n in os.environ if n.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LD_PRELOAD", " ")
    monkeypatch.setattr(heap, "_set_thresholds", lambda: "set")
    assert keep_freed_cpu_memory() == "set"

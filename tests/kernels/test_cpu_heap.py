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

# Rounds of 25 tensors of 8 MiB made and freed, as a training step makes and frees its activations. Printed:
# the resident memory still held after a round is freed (MiB), and the minor page faults of the later rounds.
ROUNDS = """
import json, os, resource, sys, torch
if sys.argv[1] == "keep":
    from lmtrain.kernels import keep_freed_cpu_memory
    print(keep_freed_cpu_memory(), file=sys.stderr)
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
def one_round():
    tensors = [torch.ones(2048, 1024) for _ in range(25)]
    del tensors
before = resident_mib()
one_round()
held = resident_mib() - before
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    one_round()
print(json.dumps([held, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults]))
"""


def held_and_faults(mode: str) -> tuple[float, int]:
    """(MiB still resident after 200 MiB of tensors are freed, page faults of 4 more rounds), in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, env=env, check=True)
    held, faults = json.loads(out.stdout)
    return held, faults


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_kept_memory_is_reused_instead_of_faulted_in_again():
    default_held, default_faults = held_and_faults("default")
    kept_held, kept_faults = held_and_faults("keep")
    assert default_held < 50  # glibc hands the freed 200 MiB back to the kernel
    assert kept_held > 150  # kept: the next round's tensors land on pages already mapped
    assert kept_faults < default_faults


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

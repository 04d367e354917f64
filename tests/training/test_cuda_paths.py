"""The CUDA path, checked without a GPU: device binding, host-side waits outside NCCL, per-device RNG, TF32.

``torch.cuda`` and the process-group calls are replaced by recorders, so these tests say what lmtrain asks
of CUDA and NCCL on a GPU node, in order, on any machine.
"""

from __future__ import annotations

import datetime
import logging

import pytest
import torch
import torch.distributed as dist

from lmtrain.errors import UserError
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed
from lmtrain.training.precision import Precision
from tests.conftest import compose_config


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """A GPU node of 2 devices where this process is rank 1 (LOCAL_RANK 1): every CUDA and NCCL call recorded."""
    recorded: list[tuple] = []
    for key, value in {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: recorded.append(("set_device", index)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: recorded.append(("init", backend, kw)))
    monkeypatch.setattr(dist, "new_group", lambda **kw: recorded.append(("new_group", kw)) or "host-group")
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    return recorded


def test_each_rank_binds_its_own_gpu_before_it_joins_nccl(calls):
    d = Distributed.from_env("ddp", "cuda", timeout=600, host_timeout=7200)
    assert calls[0] == ("set_device", 1)  # before NCCL or any collective touches cuda:0
    kind, backend, options = calls[1]
    assert (kind, backend) == ("init", "nccl")
    assert options["device_id"] == torch.device("cuda", 1)
    assert options["timeout"] == datetime.timedelta(seconds=600)
    assert calls[2] == ("new_group", {"backend": "gloo", "timeout": datetime.timedelta(seconds=7200)})
    assert d.control_group == "host-group" and d.device(torch.device("cuda")) == torch.device("cuda", 1)


def test_more_processes_than_gpus_is_refused_with_the_fix(calls, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        UserError,
        match=r"LOCAL_RANK=1, but this node shows 1 CUDA device\(s\): start at most one "
        r"process per GPU",
    ):
        Distributed.from_env("ddp", "cuda")
    assert not [c for c in calls if c[0] == "init"]


def test_cpu_jobs_join_gloo_without_touching_cuda(calls):
    Distributed.from_env("ddp", "cpu", timeout=60)
    assert not [c for c in calls if c[0] == "set_device"]
    assert calls[0][:2] == ("init", "gloo") and "device_id" not in calls[0][2]


def test_object_collectives_and_barriers_wait_on_the_host_group(monkeypatch):
    seen = []
    monkeypatch.setattr(dist, "all_gather_object", lambda out, obj, group=None: seen.append(("gather", group)))
    monkeypatch.setattr(dist, "broadcast_object_list", lambda box, src, group=None: seen.append(("broadcast", group)))
    monkeypatch.setattr(dist, "barrier", lambda group=None: seen.append(("barrier", group)))
    d = Distributed(0, 2, 0, control_group="host-group")
    d.gather(1), d.broadcast("tokenizer"), d.barrier()
    assert seen == [("gather", "host-group"), ("broadcast", "host-group"), ("barrier", "host-group")]


def test_timeouts_are_settings_checked_before_any_work():
    cfg = compose_config("pretrain", ["trainer.dist_timeout=2h", "trainer.host_timeout=1d"])
    assert (cfg.trainer.dist_timeout, cfg.trainer.host_timeout) == ("2h", "1d")
    from lmtrain.config.checks import ConfigRangeError
    from lmtrain.config.training import TrainerConfig

    with pytest.raises(ConfigRangeError) as error:
        TrainerConfig(host_timeout="forever")
    assert error.value.field == "host_timeout" and "positive duration" in error.value.allowed


def test_checkpoints_keep_the_current_gpus_generator_only(monkeypatch):
    def every_gpu():
        raise AssertionError("get_rng_state_all opens a CUDA context on every visible GPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: torch.tensor([7], dtype=torch.uint8))
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state: restored.append(int(state[0])))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    state = ckpt.rng_state()
    assert int(state["cuda"][0]) == 7
    ckpt.set_rng_state(state)
    # an older checkpoint with every device's generator: this process restores its own device's
    ckpt.set_rng_state({**state, "cuda": [torch.tensor([3], dtype=torch.uint8), torch.tensor([5], dtype=torch.uint8)]})
    assert restored == [7, 5]


def test_a_cpu_run_on_a_gpu_machine_saves_no_cuda_state(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert "cuda" not in ckpt.rng_state()


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_is_a_setting_and_is_said(tf32, caplog):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        with caplog.at_level(logging.INFO, logger="lmtrain.training.precision"):
            Precision("fp32", torch.device("cuda"), tf32=tf32)
        assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
        assert f"trainer.tf32={str(tf32).lower()}" in caplog.text
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before

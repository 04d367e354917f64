"""FSDP as its users expect it, with 2 gloo processes (one launch of tests/training/fsdp_worker.py): a model built
on the meta device gets the weights of a normal build, 2-D meshes (HSDP) train as one process does, the bf16 policy
reaches fully_shard and the blocks, and evaluation is shared between ranks yet equals one process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from lmtrain.errors import UserError
from lmtrain.training.deferred_init import ShardLayout
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import rank_share
from lmtrain.training.sharding import shard_layout
from tests.conftest import run_cli
from tests.training.test_distributed import _common, _run

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)
WORKER = Path(__file__).with_name("fsdp_worker.py")
FP32 = ("flat", "2x1", "1x2")
BF16 = ("bf16", "bf16-fp32-reduce")


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fsdp") / "findings.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_a_meta_built_model_gets_the_weights_of_a_normal_build_on_every_mesh(findings):
    for name, found in findings["fsdp"].items():
        assert found["on_meta"], name
        assert found["init_gap"] == 0.0, name  # exactly the same initial weights


def test_hsdp_meshes_train_as_one_process_does(findings):
    meshes = {
        name: (found["calls"][0]["mesh"], found["calls"][0]["mesh_dims"]) for name, found in findings["fsdp"].items()
    }
    assert meshes["flat"] == ([2], [])
    assert meshes["2x1"] == ([2, 1], ["replicate", "shard"]) and meshes["1x2"] == ([1, 2], ["replicate", "shard"])
    for name in FP32:
        found = findings["fsdp"][name]
        assert abs(found["loss"] - found["ref_loss"]) < 1e-6 and found["step_gap"] < 1e-6, (name, found)


def test_bf16_gathers_the_blocks_in_bf16_and_reduces_in_the_chosen_dtype(findings):
    for name, reduce in (("bf16", "torch.bfloat16"), ("bf16-fp32-reduce", "torch.float32")):
        found = findings["fsdp"][name]
        blocks, root = found["calls"][:-1], found["calls"][-1]
        assert {(c["module"], c["param_dtype"], c["reduce_dtype"], c["cast_forward_inputs"]) for c in blocks} == {
            ("Block", "torch.bfloat16", reduce, True)
        }
        assert (root["module"], root["param_dtype"], root["reduce_dtype"], root["cast_forward_inputs"]) == (
            "ObjectiveStep",
            "None",
            reduce,
            False,
        )
        assert found["dtypes"] == {"block": "torch.bfloat16", "root": "torch.float32"}  # seen inside the forward
        assert abs(found["loss"] - found["ref_loss"]) < 1e-3 and found["step_gap"] < 1e-2, (name, found)
    for name in FP32:
        assert {c["param_dtype"] for c in findings["fsdp"][name]["calls"]} == {"None"}


def test_evaluation_is_shared_between_ranks_and_equals_one_process(findings):
    single = findings["single_eval"]
    # 3 batches per objective: rank 0 evaluates 2, rank 1 one; under FSDP rank 1 runs a padding pass as well
    assert findings["ddp_eval"]["passes"] == [4, 2]
    evaluated = {"ddp": findings["ddp_eval"]}
    for name, found in findings["fsdp"].items():
        assert found["eval"]["passes"] == [4, 4], name
        evaluated[name] = found["eval"]
    for name, found in evaluated.items():
        reference = single if name in ("ddp", *FP32) else findings["fsdp"][name]["ref_eval"]
        tolerance = 1e-9 if name in ("ddp", *FP32) else 1e-3
        for objective in ("lm", "cls"):
            assert found[objective]["sequences"] == 11
            assert found[objective]["gold"] == reference[objective]["gold"]  # predictions in the set's order
            for metric, value in reference[objective]["metrics"].items():
                assert abs(found[objective]["metrics"][metric] - value) < tolerance, (name, objective, metric)


def test_the_ranks_shares_cover_the_batches_in_order():
    assert [list(rank_share(5, r, 2)) for r in range(2)] == [[0, 1, 2], [3, 4]]
    assert [list(rank_share(1, r, 3)) for r in range(3)] == [[0], [], []]


def test_replicas_that_do_not_divide_the_ranks_are_refused():
    with pytest.raises(UserError, match=r"trainer.fsdp_replicas=3 must divide the 4 processes"):
        shard_layout(Distributed(rank=1, world_size=4), 3)
    assert shard_layout(Distributed(rank=3, world_size=4), 2) == ShardLayout(shards=2, index=1)


def _start_metrics(run_dir: Path) -> dict[str, float]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k.startswith("start/")}


def test_fsdp_evaluates_before_the_first_step_as_one_process_does(tmp_path):
    # the first evaluation used to run before FSDP's root had set itself up, and the first step then failed
    args = [
        *_common(tmp_path),
        "trainer.batch_size=4",
        "trainer.max_steps=2",
        "trainer.save_every=0",
        "trainer.eval_at_start=true",
    ]
    _run(
        tmp_path,
        *args,
        "trainer.strategy=fsdp",
        "trainer.fsdp_replicas=1",
        f"hydra.run.dir={tmp_path / 'fsdp'}",
        nproc=2,
    )
    _run(tmp_path, *args, f"hydra.run.dir={tmp_path / 'single'}")
    sharded, single = _start_metrics(tmp_path / "fsdp"), _start_metrics(tmp_path / "single")
    assert sharded and sharded.keys() == single.keys()
    assert all(abs(sharded[k] - single[k]) < 1e-5 for k in single), (sharded, single)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.fsdp_replicas=2"], "trainer.fsdp_replicas=2: must be unset unless trainer.strategy=fsdp"),
        (
            ["trainer.strategy=ddp", "trainer.fsdp_reduce_fp32=true"],
            "trainer.fsdp_reduce_fp32=true: must be unset unless trainer.strategy=fsdp",
        ),
        (
            ["trainer.strategy=fsdp", "trainer.fsdp_reduce_fp32=false"],
            "trainer.fsdp_reduce_fp32=false: must be unset unless trainer.precision=bf16",
        ),
        (["trainer.strategy=fsdp", "trainer.fsdp_replicas=0"], "trainer.fsdp_replicas=0: must be >= 1"),
    ],
)
def test_fsdp_keys_are_refused_where_they_change_nothing(tmp_path, overrides, message):
    out = run_cli("pretrain", "debug=tiny", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr
    assert not (tmp_path / "run").exists()

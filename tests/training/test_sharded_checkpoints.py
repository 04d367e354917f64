"""Sharded checkpoints (``trainer.checkpoint_format=sharded``): each of 2 gloo ranks writes its own shards; resuming
on 2 ranks or in one process gives the uninterrupted run's losses; exports load in transformers; crafted files are
refused without running them."""

from __future__ import annotations

import dataclasses
import pickle
import sys

import pytest
import torch
import torch.distributed as dist

from lmtrain.errors import UserError
from lmtrain.files import checkpoints as checkpoint_files
from lmtrain.files.sharded import load_sharded, read_sharded_metadata, single_process_quietly
from lmtrain.models.loading import load_checkpoint
from lmtrain.training import checkpoint as ckpt
from lmtrain.training.distributed import Distributed
from lmtrain.training.sharded_checkpoint import load_sharded_checkpoint, save_sharded_checkpoint
from tests.conftest import run_cli
from tests.training.test_checkpoint_files import RunsShell
from tests.training.test_distributed import _common, _losses, _run

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)
SHARDED = ["trainer.strategy=fsdp", "trainer.checkpoint_format=sharded"]


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """Two uninterrupted 2-rank FSDP runs, one saving sharded checkpoints, one full ones (steps 4 and 8)."""
    workdir = tmp_path_factory.mktemp("sharded")
    for form in ("sharded", "full"):
        _run(
            workdir,
            *_common(workdir),
            "trainer.batch_size=4",
            "trainer.strategy=fsdp",
            f"trainer.checkpoint_format={form}",
            f"hydra.run.dir={workdir / form}",
            nproc=2,
        )
    return workdir


def _step(workdir, run: str, step: int):
    return workdir / run / "checkpoints" / f"step-{step}"


def test_each_rank_writes_its_own_shards_of_the_full_formats_weights(sharded_run):
    checkpoint = _step(sharded_run, "sharded", 4)
    assert (sharded_run / "sharded" / "checkpoints" / "last").resolve().name == "step-8"
    assert not (checkpoint / checkpoint_files.WEIGHTS).exists()  # nothing gathered to rank 0
    shards = sorted(p.name for p in (checkpoint / "sharded").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    sizes = [(checkpoint / "sharded" / name).stat().st_size for name in shards[1:]]
    assert 0.5 < sizes[0] / sizes[1] < 2, sizes  # each rank wrote about half of the weights and AdamW state
    state = torch.load(checkpoint / checkpoint_files.TRAINER_STATE, weights_only=True)
    assert "optimizer" not in state and len(state["rng_per_rank"]) == 2
    assert ckpt.checkpoint_problem(checkpoint) is None
    assert _losses(sharded_run / "sharded") == _losses(sharded_run / "full")
    consolidated, _, _ = load_checkpoint(_step(sharded_run, "sharded", 8))
    gathered, _, _ = load_checkpoint(_step(sharded_run, "full", 8))
    assert consolidated.heads["mlm"].weight is consolidated.backbone.embeddings.token.weight  # still tied
    for name, tensor in gathered.state_dict().items():
        torch.testing.assert_close(consolidated.state_dict()[name], tensor, atol=0, rtol=0, msg=name)


def test_resume_on_two_ranks_continues_with_the_same_losses(sharded_run):
    _run(
        sharded_run,
        *_common(sharded_run),
        "trainer.batch_size=4",
        *SHARDED,
        f"trainer.resume={_step(sharded_run, 'sharded', 4)}",
        f"hydra.run.dir={sharded_run / 'resumed-2'}",
        nproc=2,
    )
    straight, resumed = _losses(sharded_run / "sharded"), _losses(sharded_run / "resumed-2")
    assert sorted(resumed) == [5, 6, 7, 8]
    assert all(abs(resumed[s] - straight[s]) < 1e-6 for s in range(5, 9)), (resumed, straight)


def test_resume_on_one_rank_matches_the_full_checkpoint_path(sharded_run):
    """A checkpoint of 2 ranks continued by 1 (DCP reshards): the losses and weights of resuming the full one."""
    for form in ("sharded", "full"):
        _run(
            sharded_run,
            *_common(sharded_run),
            "trainer.batch_size=4",
            *SHARDED,
            f"trainer.resume={_step(sharded_run, form, 4)}",
            f"hydra.run.dir={sharded_run / f'one-{form}'}",
            torchrun=True,
        )
    from_shards, from_full = _losses(sharded_run / "one-sharded"), _losses(sharded_run / "one-full")
    assert sorted(from_shards) == [5, 6, 7, 8]
    assert all(abs(from_shards[s] - from_full[s]) < 1e-6 for s in range(5, 9)), (from_shards, from_full)
    a, _, _ = load_checkpoint(_step(sharded_run, "one-sharded", 8))
    b, _, _ = load_checkpoint(_step(sharded_run, "one-full", 8))
    for name, tensor in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[name], tensor, atol=1e-6, rtol=0, msg=name)


@torch.no_grad()
def test_export_of_a_sharded_checkpoint_loads_in_transformers(sharded_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    checkpoint = _step(sharded_run, "sharded", 8)
    for form in ("hf", "safetensors"):
        out = run_cli("export", f"ckpt={checkpoint}", f"format={form}", f"out={tmp_path / form}", cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
    ours, _, _ = load_checkpoint(checkpoint)
    hf = transformers.AutoModelForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(5, ours.spec.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    hidden = ours.backbone(ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    expected = hf(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(ours.heads["mlm"](hidden), expected.prediction_logits, atol=1e-5, rtol=0)
    shared, _, _ = load_checkpoint(tmp_path / "safetensors")  # the full weights once, without optimizer state
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(shared.state_dict()[name], tensor, atol=0, rtol=0)
    assert (tmp_path / "safetensors" / "model.safetensors").stat().st_size < sum(
        f.stat().st_size for f in (checkpoint / "sharded").iterdir()
    ) / 2


# ---------------------------------------------------------------- one process: integrity and crafted files
def _save(checkpoints, step: int):
    torch.manual_seed(step)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    path = save_sharded_checkpoint(
        Distributed(), checkpoints, step, model, optimizer, {"family": "test"}, {"train": {"step": step}}, None
    )
    return path, model, optimizer


def test_one_process_round_trip_restores_weights_and_optimizer(tmp_path):
    path, model, optimizer = _save(tmp_path / "checkpoints", 3)
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=5e-2)
    load_sharded_checkpoint(Distributed(), path, fresh, fresh_optimizer)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert fresh_optimizer.param_groups[0]["lr"] == 1e-3
    torch.testing.assert_close(fresh_optimizer.state_dict()["state"], optimizer.state_dict()["state"])
    assert checkpoint_files.is_checkpoint(path) and (tmp_path / "checkpoints" / "last").resolve() == path


def test_a_crafted_metadata_is_refused_without_running_it(tmp_path):
    path, _, _ = _save(tmp_path / "checkpoints", 1)
    marker = tmp_path / "ran"
    (path / "sharded" / ".metadata").write_bytes(pickle.dumps(RunsShell(marker)))
    with pytest.raises(UserError) as error:
        checkpoint_files.read_weights(path)
    message = str(error.value)
    assert f"{path / 'sharded' / '.metadata'} names posix.system" in message
    assert "refusing to unpickle it, since loading it could run arbitrary code" in message
    assert "refusing to unpickle" in ckpt.checkpoint_problem(path)
    assert not marker.exists()


def test_metadata_that_points_outside_its_folder_is_refused(tmp_path):
    path, _, _ = _save(tmp_path / "checkpoints", 1)
    metadata = read_sharded_metadata(path / "sharded")
    metadata.storage_data = {
        key: dataclasses.replace(info, relative_path="../../secret") for key, info in metadata.storage_data.items()
    }
    (path / "sharded" / ".metadata").write_bytes(pickle.dumps(metadata))
    assert "names '../../secret', which is not a file of" in ckpt.checkpoint_problem(path)
    with pytest.raises(
        UserError, match=r"sharded cannot be read \(.metadata names '../../secret', which is not a file"
    ):
        checkpoint_files.read_weights(path)


def test_a_crafted_value_in_a_shard_is_refused_without_running_it(tmp_path):
    from torch.distributed.checkpoint import save

    marker = tmp_path / "ran"
    with single_process_quietly(True):
        save(
            {"weights": {"w": torch.ones(2)}, "payload": RunsShell(marker)},
            checkpoint_id=tmp_path / "shards",
            no_dist=True,
        )
    with pytest.raises(UserError, match=r"names a Python object at payload, .*refusing to unpickle"):
        load_sharded(tmp_path / "shards", {"payload": None}, no_dist=True)
    assert not marker.exists()


def test_resume_auto_skips_a_checkpoint_with_a_truncated_shard(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    older, _, _ = _save(checkpoints, 1)
    newest, _, _ = _save(checkpoints, 2)
    shard = newest / "sharded" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])
    assert "__0_0.distcp is truncated" in ckpt.checkpoint_problem(newest)
    assert ckpt.resume_checkpoint("auto", checkpoints) == older
    assert "step-2 is damaged (sharded: __0_0.distcp is truncated" in caplog.text
    with pytest.raises(UserError, match=r"step-2 cannot be resumed from \(sharded: __0_0.distcp is truncated"):
        ckpt.resume_checkpoint(str(newest), checkpoints)


def _huge(metadata):
    entry = metadata.state_dict_metadata["model.0.weight"]
    metadata.state_dict_metadata["model.0.weight"] = dataclasses.replace(entry, size=torch.Size([10**6, 10**6]))


def _negative(metadata):
    entry = metadata.state_dict_metadata["model.0.weight"]
    metadata.state_dict_metadata["model.0.weight"] = dataclasses.replace(entry, size=torch.Size([-3, 8]))


def _chunk_outside(metadata):
    entry = metadata.state_dict_metadata["model.0.weight"]
    chunk = dataclasses.replace(entry.chunks[0], offsets=torch.Size([10**9, 0]))
    metadata.state_dict_metadata["model.0.weight"] = dataclasses.replace(entry, chunks=[chunk])


@pytest.mark.parametrize(
    "edit,said",
    [
        (
            lambda m: setattr(m, "state_dict_metadata", list(m.state_dict_metadata.items())),
            "is not the metadata of a sharded checkpoint (its state_dict_metadata is a list, not a dict)",
        ),
        (
            lambda m: setattr(m, "state_dict_metadata", {5: m.state_dict_metadata["model.0.weight"]}),
            "is not the metadata of a sharded checkpoint (its state_dict_metadata names 5, not a string)",
        ),
        (
            lambda m: setattr(m, "storage_data", list(m.storage_data.values())),
            "is not the metadata of a sharded checkpoint (its storage_data is a list, not a dict)",
        ),
        (
            _huge,
            ".metadata gives model.0.weight the size [1000000, 1000000] (4000000000000 bytes of torch.float32), "
            "more than the",
        ),
        (_negative, "(model.0.weight has the size torch.Size([-3, 8]), not a list of counts)"),
        (_chunk_outside, "(model.0.weight has chunks that are not a list of parts within its size)"),
    ],
    ids=["list", "name-not-a-string", "storage-list", "huge-size", "negative-size", "chunk-outside"],
)
def test_a_malformed_metadata_is_refused_before_anything_is_allocated(tmp_path, edit, said):
    path, _, _ = _save(tmp_path / "checkpoints", 1)
    metadata = read_sharded_metadata(path / "sharded")
    edit(metadata)
    (path / "sharded" / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(UserError) as error:
        checkpoint_files.read_weights(path)
    message = " ".join(str(error.value).split())
    assert said in message and "Use another checkpoint (an older checkpoints/step-N)" in message
    assert said in ckpt.checkpoint_problem(path)  # so trainer.resume=auto passes it over
    with pytest.raises(UserError, match="Use another checkpoint"):
        load_sharded_checkpoint(
            Distributed(), path, torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8)), None
        )


def test_a_metadata_that_declares_a_huge_object_or_is_huge_is_refused(tmp_path):
    path, _, _ = _save(tmp_path / "checkpoints", 1)
    metadata = path / "sharded" / ".metadata"
    metadata.write_bytes(b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"abc")  # BINBYTES8 of 2**60 bytes
    with pytest.raises(UserError, match=r"sharded/.metadata is unreadable \(MemoryError\): the file is truncated"):
        checkpoint_files.read_weights(path)
    with open(metadata, "wb") as file:
        file.truncate((1 << 30) + 1)  # sparse: no disk, no memory
    with pytest.raises(
        UserError,
        match=r"sharded/.metadata is not the metadata of a sharded checkpoint \(it is over "
        r"1024 MiB\)",
    ):
        checkpoint_files.read_weights(path)

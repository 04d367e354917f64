"""Run under `torchrun --nproc_per_node=2`: FSDP's meta-device init, meshes, bf16 policy and sharded evaluation,
each checked against one process with the same weights. Rank 0 writes the findings as JSON to ``argv[1]``.

Kept out of pytest's collection (no ``test_`` prefix): tests/training/test_fsdp_features.py launches it once.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from lmtrain.config.training import TrainerConfig
from lmtrain.data.collate import PadCollator
from lmtrain.models.language_model import LanguageModel
from lmtrain.models.spec import TransformerSpec
from lmtrain.objectives.causal_lm import CausalLM
from lmtrain.objectives.sequence_classification import SequenceClassification
from lmtrain.training.deferred_init import build_deferred
from lmtrain.training.distributed import Distributed
from lmtrain.training.evaluation import evaluate_objective
from lmtrain.training.precision import Precision
from lmtrain.training.sharding import full_model_state, fully_shard_step, root_gathered, shard_layout
from lmtrain.training.trainer import ObjectiveStep

SPEC = TransformerSpec(
    vocab_size=40,
    n_layers=2,
    d_model=16,
    n_heads=2,
    d_ff=32,
    max_positions=16,
    causal=True,
    norm="pre",
    dropout=0.0,
    attention_dropout=0.0,
)
CPU = torch.device("cpu")


def build() -> LanguageModel:
    return LanguageModel(SPEC, ["lm"], {"classifier": {"kind": "pooled_classifier", "n_classes": 3, "dropout": 0.0}})


def examples(n: int, seed: int) -> list[dict]:
    """``n`` random sequences of 3-9 tokens with a label each."""
    rng = np.random.default_rng(seed)
    return [
        {"input_ids": rng.integers(1, 40, rng.integers(3, 10)).astype(np.int64), "label": int(rng.integers(3))}
        for _ in range(n)
    ]


def evaluations(model, dist, autocast) -> dict:
    """Metrics of both objectives over 11 examples in batches of 4 (3 batches: ranks get 2 and 1), and the
    forward passes this call made on each rank."""
    passes = []
    hook = model.backbone.register_forward_pre_hook(lambda *_: passes.append(1))
    out = {}
    for name, objective in (("lm", CausalLM()), ("cls", SequenceClassification(["a", "b", "c"]))):
        predictions: list = []
        metrics, sequences = evaluate_objective(
            model,
            objective,
            examples(11, 1),
            PadCollator(0),
            4,
            None,
            CPU,
            autocast,
            predictions_out=predictions,
            dist=dist,
        )
        out[name] = {
            "metrics": metrics,
            "sequences": sequences,
            "gold": [g for p in predictions for g in p.get("gold", [])] if predictions else [],
        }
    hook.remove()
    out["passes"] = dist.gather(len(passes)) if dist is not None else [len(passes)]
    return out


def train_batch(rank: int | None) -> dict:
    """Rank ``rank``'s batch of one step (None: both ranks' batches in one, as one process sees them)."""
    parts = [examples(3, 10), examples(3, 11)]
    return PadCollator(0)(parts[rank] if rank is not None else parts[0] + parts[1])


def one_step(step, model, dist, autocast) -> float:
    """One SGD step as the Trainer takes it (loss over the global target count, times the world size)."""
    objective = CausalLM()
    batch = train_batch(dist.rank)
    norm = dist.sum(objective.count_targets(batch))
    with autocast():
        out = step(batch, norm)
    (out.loss * dist.world_size).backward()
    return float(dist.sum({"loss": out.loss.detach()})["loss"])


def reference(autocast) -> tuple[dict, dict, float]:
    """One process: the initial weights and evaluations, then the weights and loss after the same step."""
    torch.manual_seed(0)
    model = build()
    initial = {k: v.clone() for k, v in full_model_state_single(model).items()}
    evaluated = evaluations(model, None, autocast)
    objective, batch = CausalLM(), train_batch(None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with autocast():
        out = objective(model, batch, objective.count_targets(batch))
    out.loss.backward()
    optimizer.step()
    return {"initial": initial, "after": full_model_state_single(model)}, evaluated, float(out.loss)


def full_model_state_single(model) -> dict:
    from lmtrain.files.checkpoints import tied_names

    duplicates = tied_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in duplicates}


def largest_gap(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


class Recorder:
    """Stands in for ``fully_shard``, keeping what each call got."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, module, **kwargs):
        policy, mesh = kwargs["mp_policy"], kwargs["mesh"]
        self.calls.append(
            {
                "module": type(module).__name__,
                "param_dtype": str(policy.param_dtype),
                "reduce_dtype": str(policy.reduce_dtype),
                "cast_forward_inputs": policy.cast_forward_inputs,
                "mesh": list(mesh.shape),
                "mesh_dims": list(mesh.mesh_dim_names or []),
            }
        )
        return self.real(module, **kwargs)


def check(dist: Distributed, replicas: int | None, precision: str, reduce_fp32: bool | None) -> dict:
    """Shard a meta-built model as the Trainer does; compare it with one process at init, in evaluation and after
    one step."""
    import torch.distributed.fsdp as fsdp

    cfg = TrainerConfig(strategy="fsdp", precision=precision, fsdp_replicas=replicas, fsdp_reduce_fp32=reduce_fp32)
    autocast = Precision(precision, CPU).autocast
    torch.manual_seed(0)
    model = build_deferred(build, shard_layout(dist, replicas))
    on_meta = all(p.is_meta for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    recorder = Recorder(fsdp.fully_shard)
    fsdp.fully_shard = recorder
    try:
        step = fully_shard_step(ObjectiveStep(model, CausalLM()), model, optimizer, cfg, dist, CPU)
    finally:
        fsdp.fully_shard = recorder.real
    initial = {k: v.clone() for k, v in full_model_state(model).items()}  # without a gather it is the live shard
    dtypes = {}
    hook = model.backbone.blocks[0].register_forward_pre_hook(
        lambda block, _: dtypes.update(
            block=str(block.ff.up.weight.dtype), root=str(model.backbone.embeddings.token.weight.dtype)
        )
    )
    with root_gathered(step, True):
        evaluated = evaluations(model, dist, autocast)
    loss = one_step(step, model, dist, autocast)
    hook.remove()
    optimizer.step()
    after = full_model_state(model)
    ref_weights, ref_eval, ref_loss = reference(autocast)
    if not dist.is_main:
        return {}
    return {
        "on_meta": on_meta,
        "calls": recorder.calls,
        "dtypes": dtypes,
        "init_gap": largest_gap(ref_weights["initial"], initial),
        "step_gap": largest_gap(ref_weights["after"], after),
        "loss": loss,
        "ref_loss": ref_loss,
        "eval": evaluated,
        "ref_eval": ref_eval,
    }


def main() -> None:
    torch.set_num_threads(1)
    dist = Distributed.from_env("fsdp", "cpu")
    results = {"ddp_eval": None, "fsdp": {}}
    torch.manual_seed(0)
    replicated = Distributed(dist.rank, dist.world_size, dist.local_rank, dist.control_group, "ddp")
    results["ddp_eval"] = evaluations(build(), replicated, Precision("fp32", CPU).autocast)
    for name, replicas, precision, reduce_fp32 in (
        ("flat", None, "fp32", None),
        ("2x1", 2, "fp32", None),
        ("1x2", 1, "fp32", None),
        ("bf16", None, "bf16", None),
        ("bf16-fp32-reduce", 2, "bf16", True),
    ):
        results["fsdp"][name] = check(dist, replicas, precision, reduce_fp32)
    if dist.is_main:
        torch.manual_seed(0)
        results["single_eval"] = evaluations(build(), None, Precision("fp32", CPU).autocast)
        with open(sys.argv[1], "w") as out:
            json.dump(results, out)
    dist.close()


if __name__ == "__main__":
    main()

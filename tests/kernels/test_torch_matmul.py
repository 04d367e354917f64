"""``trainer.cpu_kernels=torch-matmul``: PyTorch's matrix products with lmtrain's cheaper dropout and attention.

In eval mode it computes what PyTorch's own ops compute; in training its dropout is lmtrain's, so a
run repeats itself and resumes exactly, and the key refuses a misspelling naming the choices.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lmtrain.cli.main import main
from lmtrain.commands import pretrain
from lmtrain.kernels import Linear, attend, cpu_kernels, dropout, prepacked_linears
from lmtrain.kernels.cpu.attention import attend_with_cheap_dropout
from lmtrain.kernels.cpu.dropout import cheap_dropout
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import Transformer
from lmtrain.run_folder.layout import read_metrics
from tests.conftest import TINY, compose_config, stopping_after_step
from tests.kernels.op_patches import counting_onednn_op
from tests.training.test_trainer import _overrides as trainer_overrides

SPEC = dict(vocab_size=50, n_layers=2, d_model=32, n_heads=4, d_ff=48, max_positions=32)


def _outputs_and_grads(kernels: str) -> list[torch.Tensor]:
    """A tiny backbone's hidden states (eval mode, padded batch) and parameter gradients under ``kernels``."""
    torch.manual_seed(0)
    model = Transformer(TransformerSpec(**SPEC, dropout=0.1, attention_dropout=0.1)).eval()
    ids = torch.randint(0, 50, (3, 12))
    padding = torch.ones(3, 12, dtype=torch.bool)
    padding[1, 8:] = False
    with cpu_kernels(kernels):
        hidden = model(ids, attention_mask=padding)
        hidden.square().sum().backward()
    return [hidden.detach(), *(p.grad for p in model.parameters() if p.grad is not None)]


def test_in_eval_mode_forward_and_backward_equal_pytorchs_ops(monkeypatch):
    calls = counting_onednn_op(monkeypatch)
    ours, theirs = _outputs_and_grads("torch-matmul"), _outputs_and_grads("torch")
    assert calls == []  # PyTorch's products, forward and backward
    assert len(ours) == len(theirs) > 10
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_products_are_pytorchs_and_dropout_and_attention_are_lmtrains(monkeypatch):
    torch.manual_seed(0)
    layer, x = Linear(24, 40), torch.randn(4, 16, 24)
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    with cpu_kernels("torch-matmul") as kernels:
        calls = counting_onednn_op(monkeypatch)
        out = layer(x)
        torch.manual_seed(3)
        dropped = dropout(x, 0.3, training=True)
        attended = attend(q, k, v, None, True, 0.2)
        with torch.no_grad(), prepacked_linears(layer.eval(), 1).applied() as packed:
            layer(x)
    assert kernels == "torch-matmul" and calls == [] and not packed  # no oneDNN product, no prepacked weights
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    torch.manual_seed(3)
    assert torch.equal(dropped, cheap_dropout(x, 0.3))
    assert torch.equal(attended, attend_with_cheap_dropout(q, k, v, True, 0.2))


# eight steps with dropout on (the trainer tests' corpus and model), saved every four
TRAINER = dict(max_steps=8, save_every=4, eval_every=0, keep_last=0, preflight="false", cpu_kernels="torch-matmul")


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    return trainer_overrides(tmp_path, *(f"trainer.{key}={value}" for key, value in TRAINER.items()), *extra)


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["train/loss"] for e in read_metrics(run_dir) if "train/loss" in e}


def test_with_dropout_a_run_repeats_itself_and_resumes_exactly(tmp_path, monkeypatch):
    # the runs select kernels for the process: the session's own choice comes back afterwards
    from lmtrain.kernels import select as select_module

    monkeypatch.setitem(select_module._state, "active", select_module._state["active"])
    runs = {name: tmp_path / name for name in ("first", "second", "resumed")}
    summaries = []
    for name in ("first", "second"):
        runs[name].mkdir()
        monkeypatch.chdir(runs[name])
        summaries.append(pretrain.run(compose_config("pretrain", _overrides(tmp_path))))
    runs["resumed"].mkdir()
    monkeypatch.chdir(runs["resumed"])
    with stopping_after_step(4), pytest.raises(SystemExit):
        pretrain.run(compose_config("pretrain", _overrides(tmp_path)))
    pretrain.run(compose_config("pretrain", _overrides(tmp_path, "trainer.resume=auto")))

    first, second, resumed = (_losses(runs[name]) for name in ("first", "second", "resumed"))
    assert [s["cpu_kernels"] for s in summaries] == ["torch-matmul", "torch-matmul"]
    assert sorted(first) == list(range(1, 9)) and first == second  # same seed, same losses
    assert [resumed[s] for s in range(5, 9)] == [first[s] for s in range(5, 9)]  # exact, with dropout on


def test_a_misspelt_value_is_refused_naming_the_key_and_the_choices(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main(["pretrain", *TINY, "trainer.cpu_kernels=torch_matmul", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert refused.value.code == 2
    assert "trainer.cpu_kernels=torch_matmul: must be one of auto | onednn | torch-matmul | torch" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoints").exists()

"""``trainer.packing``: an unpadded, packed fine-tuning run learns and resumes exactly; the values it refuses."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import lmtrain.models.transformer as transformer
import tests.tasks.fixtures as fixtures
from lmtrain.models.spec import TransformerSpec
from lmtrain.run_folder.claim import saved_config_dir
from tests.commands.test_finetune_batches import STEPS, _losses, _run
from tests.conftest import run_cli, stopping_after_step

PACKED = [*STEPS, "trainer.bucket_by_length=false", "trainer.packing=on", "optim.lr=3e-3"]


def _write_uneven_conll(path: Path, n: int, seed: int) -> list[str]:
    """``n`` template sentences of uneven length: one in three doubled, one in three cut to 3 words.
    Returns their texts."""
    rng = random.Random(seed)
    lines, texts = ["-DOCSTART- O", ""], []
    for i in range(n):
        sentence = fixtures.ner_sentence(rng)
        sentence = [*sentence, *fixtures.ner_sentence(rng)] if i % 3 == 0 else sentence[:3] if i % 3 == 1 else sentence
        lines += [*(f"{word} {tag}" for word, tag in sentence), ""]
        texts.append(" ".join(word for word, _ in sentence))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def _with_dropout(**values) -> TransformerSpec:
    return TransformerSpec(**{**values, "dropout": 0.1, "attention_dropout": 0.1})


@pytest.fixture
def overrides(tmp_path, monkeypatch) -> list[str]:
    texts = _write_uneven_conll(tmp_path / "train.conll", 160, seed=0)
    _write_uneven_conll(tmp_path / "dev.conll", 20, seed=1)
    monkeypatch.setattr(fixtures, "TransformerSpec", _with_dropout)  # a backbone whose dropout is on
    backbone = fixtures.make_checkpoint(tmp_path / "backbone", causal=False, texts=texts)
    data = [f"data.train_file={tmp_path / 'train.conll'}", f"data.eval_file={tmp_path / 'dev.conll'}"]
    return ["task=ner", f"init={backbone}", *PACKED, *data]


def test_a_packed_finetuning_run_learns_and_resumes_exactly(tmp_path, overrides, monkeypatch):
    # (padded rows, attention's rows, padded slots, real tokens) of every unpadded training batch
    plans: list[tuple[int, int, int, int]] = []
    plan_unpadding = transformer.plan_unpadding

    def recording(mask, mode):
        plan = plan_unpadding(mask, mode)
        if plan is not None:
            plans.append((plan.batch, plan.rows, mask.numel(), plan.source.numel()))
        return plan

    monkeypatch.setattr(transformer, "plan_unpadding", recording)
    _run(tmp_path / "straight", overrides)
    assert len(plans) >= 12 and all(tokens < slots for _, _, slots, tokens in plans), plans
    assert sum(rows < batch for batch, rows, _, _ in plans) >= 10, plans  # attention in fewer, packed rows
    losses = _losses(tmp_path / "straight")
    assert sum(losses[s] for s in (10, 11, 12)) < 0.8 * sum(losses[s] for s in (1, 2, 3)), losses

    with stopping_after_step(6), pytest.raises(SystemExit):
        _run(tmp_path / "resumed", overrides)
    _run(tmp_path / "resumed", [*overrides, "trainer.resume=auto"])
    got = _losses(tmp_path / "resumed")
    assert sorted(got) == list(range(1, 13))
    assert [got[s] for s in range(7, 13)] == [losses[s] for s in range(7, 13)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.packing=yes"], "trainer.packing=yes: must be one of auto | on | off"),
        (
            ["trainer.packing=on", "trainer.compile=true"],
            "trainer.packing=on: must be auto or off with trainer.compile=true",
        ),
    ],
)
def test_packing_values_that_cannot_run_are_refused(tmp_path, overrides, message):
    out = run_cli("pretrain", "debug=tiny", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_saved_before_packing_existed_resumes_unpacked_as_it_ran(tmp_path, overrides):
    """A saved config without ``trainer.packing`` ran unpacked: `lmtrain resume` keeps it so (its dropout
    masks stay those of an uninterrupted run), and resuming it by its command with packing on is refused."""
    run = tmp_path / "old"
    first = [o for o in overrides if o != "trainer.packing=on"]
    first = [*(o for o in first if not o.startswith("trainer.max_steps")), "trainer.max_steps=2"]
    out = run_cli("finetune", *first, "trainer.packing=off", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    config = run / ".hydra" / "config.yaml"
    text = config.read_text()
    assert "  packing: 'off'\n" in text, text
    config.write_text(text.replace("  packing: 'off'\n", ""))  # as a version without the key wrote it

    again = run_cli(
        "finetune", *first, "trainer.packing=on", "trainer.resume=auto", f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert again.returncode == 2 and "trainer.packing: 'off' -> 'on'" in again.stderr, again.stderr[-2000:]
    said = " ".join(again.stderr.split())
    assert "saved before trainer.packing existed and ran as trainer.packing=off: add that to the command" in said

    resumed = run_cli("resume", str(run), "trainer.max_steps=4", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming with trainer.packing=off, as it ran" in " ".join(resumed.stderr.split())
    record = saved_config_dir(run)  # the resume's own record of the config it ran with
    assert record is not None and record != config.parent
    assert "  packing: 'off'\n" in (record / "config.yaml").read_text()


@pytest.mark.parametrize("model", ["elmo", "albef"])
def test_packing_on_for_a_family_that_never_packs_is_refused_before_the_run_folder_exists(tmp_path, model):
    """ELMo's LSTMs and ALBEF's encoders cannot pack: ``trainer.packing=on`` is refused, not ignored, and the
    family says so before any run folder is made."""
    run = tmp_path / "run"
    out = run_cli(
        "pretrain", f"model={model}", "debug=tiny", "trainer.packing=on", f"hydra.run.dir={run}", cwd=tmp_path
    )
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"trainer.packing=on: must be auto or off for model={model}" in message
    assert "leave trainer.packing at auto or set it to off" in message and "Traceback" not in message
    assert not run.exists()


def test_packing_on_for_an_elmo_run_as_init_is_refused_before_the_run_folder_exists(tmp_path):
    """``finetune init=<an ELMo run>``: the family in the run's model.json says it never packs."""
    elmo = tmp_path / "elmo"
    made = run_cli("pretrain", "model=elmo", "debug=tiny", "trainer.max_steps=2", f"hydra.run.dir={elmo}", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    run = tmp_path / "ner"
    out = run_cli(
        "finetune", "task=ner", "debug=tiny", f"init={elmo}", "trainer.packing=on", f"hydra.run.dir={run}", cwd=tmp_path
    )
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"trainer.packing=on: must be auto or off for init={elmo} (elmo family)" in message
    assert not run.exists()


def test_packing_on_for_a_model_built_without_a_packing_backbone_is_refused():
    """A model whose family does not say (a user's own, here LSTMs) is checked once built: ``on`` is refused,
    ``auto`` and ``off`` train it as it is."""
    from lmtrain.errors import UserError
    from lmtrain.models.packing import apply_packing

    class RecurrentTagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(8, 8, batch_first=True)

    with pytest.raises(UserError, match="trainer.packing=on: this RecurrentTagger has no Transformer backbone"):
        apply_packing(RecurrentTagger(), "on")
    apply_packing(RecurrentTagger(), "auto")
    apply_packing(RecurrentTagger(), "off")

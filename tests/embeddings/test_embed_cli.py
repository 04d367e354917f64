"""`lmtrain embed` end to end in a subprocess: run directory, summary keys, load, errors."""

import json

from omegaconf import OmegaConf

from lmtrain.runs import load_run
from tests.conftest import compose_config, run_cli, write_corpus
from tests.embeddings.test_io import write_malicious_pickle

EVAL_KEYS = [
    "eval/analogy_accuracy",
    "eval/analogy_oov",
    "eval/wordsim353_spearman",
    "eval/wordsim353_oov",
    "eval/simlex999_spearman",
    "eval/simlex999_oov",
    "wall_time_s",
    "vocab_size",
]


def test_every_method_composes_and_misspelt_keys_fail(tmp_path):
    for method in ("word2vec", "glove", "load"):
        cfg = compose_config("embed", [f"method={method}"])
        assert cfg.method == method and OmegaConf.to_container(cfg)
    glove = compose_config("embed", ["method=glove"]).embed
    assert glove.lr == 0.1 and glove.x_max == 3.0 and glove.corpus == "lee_wiki"
    result = run_cli("embed", "embed.sgg=1", cwd=tmp_path)
    assert result.returncode == 2 and "sgg" in result.stderr and "Traceback" not in result.stderr


def test_glove_run_then_load_evaluates_the_same_vectors(tmp_path):
    run_dir = tmp_path / "glove"
    result = run_cli(
        "embed",
        "method=glove",
        "embed.corpus=lee",
        "embed.epochs=2",
        "embed.vector_size=16",
        "progress=false",
        "query=[police]",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "glove" and all(key in summary for key in EVAL_KEYS)
    assert 0.0 <= summary["eval/analogy_oov"] <= 1.0 and summary["vocab_size"] > 1000
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and metrics[1]["train/loss"] < metrics[0]["train/loss"]
    assert all((run_dir / name).is_file() for name in ("vectors.bin", "vectors.w2v.txt", "vectors.glove.txt"))
    assert "nearest neighbours" in result.stdout and "analogy accuracy" in result.stdout

    load_dir = tmp_path / "load"
    result = run_cli(
        "embed",
        "method=load",
        f"path={run_dir / 'vectors.glove.txt'}",
        "progress=false",
        f"hydra.run.dir={load_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads((load_dir / "summary.json").read_text())
    for key in EVAL_KEYS[:-2]:
        assert loaded[key] == summary[key], key


def test_word2vec_on_user_file_and_min_count_error(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", n_docs=30)
    run_dir = tmp_path / "w2v"
    result = run_cli(
        "embed",
        f"embed.train_files=[{corpus}]",
        "embed.epochs=3",
        "embed.min_count=2",
        "embed.vector_size=16",
        "embed.sg=1",
        "progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "word2vec" and summary["corpus_tokens"] > 1000
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 and all(m["train/words_per_s"] > 0 for m in metrics)
    # `lmtrain runs` shows the method, the metric the run is ranked by, its value and the wall time
    record = load_run(run_dir)
    assert (record.command, record.model, record.metric) == ("embed", "word2vec", "analogy_accuracy")
    assert record.final == record.best == summary["eval/analogy_accuracy"] and record.steps == 3
    assert record.wall_seconds == summary["wall_time_s"]

    result = run_cli(
        "embed",
        f"embed.train_files=[{corpus}]",
        "embed.min_count=100000",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'fail'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no word occurs at least min_count=100000 times in" in result.stderr and "corpus.txt" in result.stderr


def test_load_errors_are_one_paragraph(tmp_path):
    result = run_cli("embed", "method=load", f"path={tmp_path / 'none.txt'}", cwd=tmp_path)
    assert result.returncode == 2 and "none.txt' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_refuses_a_pickle_named_like_text_vectors(tmp_path):
    marker = tmp_path / "pwned"
    crafted = write_malicious_pickle(tmp_path / "vectors.txt", marker)
    result = run_cli(
        "embed", "method=load", f"path={crafted}", "progress=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "vectors.txt' is a Python pickle" in result.stderr
    assert "embed.allow_pickle=true" in result.stderr
    assert not marker.exists()

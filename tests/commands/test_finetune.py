"""`lmtrain finetune` / `predict` / `export` in-process: each task beats its trivial baseline on a fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lmtrain.commands import export, finetune, predict
from lmtrain.errors import UserError
from lmtrain.files import checkpoints as ckpt
from tests.conftest import compose_config, run_cli
from tests.tasks.fixtures import FAST, TINY_SCRATCH, make_checkpoint, write_task_files


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_task_files(tmp_path_factory.mktemp("task-data"))


def run_command(module, command: str, workdir: Path, overrides: list[str]):
    """Run ``lmtrain <command> <overrides>`` in-process with ``workdir`` as the run directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return module.run(compose_config(command, overrides))
    finally:
        os.chdir(cwd)


def ner_files(data: Path) -> list[str]:
    return [f"data.train_file={data / 'train.conll'}", f"data.eval_file={data / 'dev.conll'}"]


@pytest.fixture(scope="module")
def ner_run(data, tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("ner-run")
    summary = run_command(finetune, "finetune", run, ["task=ner", *TINY_SCRATCH, *FAST, *ner_files(data)])
    return run, summary


def test_ner_beats_all_o_and_keeps_best(ner_run):
    run, summary = ner_run
    assert summary["baseline/all_o_f1"] == 0.0
    assert summary["best/f1"] > 0.5, summary  # entity-level F1 well above the all-O baseline
    assert {"eval/PER/f1", "eval/LOC/f1", "eval/ORG/f1", "eval/precision", "eval/recall"} <= set(summary)
    assert summary["labels"] == ["O", "B-LOC", "B-ORG", "I-ORG", "B-PER"]
    assert ckpt.is_checkpoint(run / "checkpoints" / "best")
    assert (run / "f1_per_class.png").is_file() and (run / "curves.png").is_file()  # F1 per entity type
    assert not (run / "confusion.png").exists()
    meta = json.loads((run / "checkpoints" / "best" / "model.json").read_text())
    assert meta["task"]["name"] == "ner" and meta["task_heads"]["tagger"]["kind"] == "token_classifier"


def test_predict_round_trip(ner_run, tmp_path, capsys):
    run, _ = ner_run
    text = tmp_path / "in.txt"
    text.write_text("Alice visited Paris .\nthe Globex Corp office in Tokyo hired Bob .\n")
    records = run_command(
        predict, "predict", tmp_path / "p", [f"ckpt={run}", f"input={text}", f"output={tmp_path / 'out.jsonl'}"]
    )
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == records
    first = records[0]
    assert first["words"] == ["Alice", "visited", "Paris", "."] and len(first["tags"]) == 4
    for entity in first["entities"]:
        assert first["text"][entity["start"] : entity["end"]] == entity["text"]
    types = {(e["type"], e["text"]) for r in records for e in r["entities"]}
    assert ("PER", "Alice") in types or ("LOC", "Paris") in types
    run_command(predict, "predict", tmp_path / "p2", [f"ckpt={run}", f"input={text}"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "PER 0:5 Alice" in lines[0].split("\t")


def test_predict_names_an_input_line_that_is_not_utf8(ner_run, tmp_path):
    run, _ = ner_run
    text = tmp_path / "in.txt"
    text.write_bytes(b"Alice visited Paris .\nA caf\xe9 in Lyon .\n")
    out = run_cli("predict", f"ckpt={run}", f"input={text}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"input={text}, line 2: not UTF-8 text" in " ".join(out.stderr.split())


@pytest.mark.parametrize(
    "key,expected",
    [
        ("task.max_new_tokens=5", "task.max_new_tokens=5 is not read by the run's task (ner"),
        ("top_k=3", "top_k=3 is read no more: the key moved to task.top_k"),
        ("max_new_tokens=5", "max_new_tokens=5 is read no more: the key moved to task.max_new_tokens"),
    ],
)
def test_predict_refuses_a_key_the_runs_task_does_not_read(ner_run, tmp_path, key, expected):
    run, _ = ner_run
    text = tmp_path / "in.txt"
    text.write_text("Alice visited Paris .\n")
    out = run_cli("predict", f"ckpt={run}", f"input={text}", key, f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert expected in " ".join(out.stderr.split())


def test_the_final_report_reads_the_final_evaluations_predictions(data, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lmtrain.tasks import report as report_module

    calls = []
    real = report_module.evaluate_objective
    monkeypatch.setattr(report_module, "evaluate_objective", lambda *a, **k: calls.append(1) or real(*a, **k))
    files = [f"data.train_file={data / 'train.tsv'}", f"data.eval_file={data / 'dev.tsv'}"]
    summary = run_command(finetune, "finetune", tmp_path / "run", ["task=classification", *TINY_SCRATCH, *FAST, *files])
    assert calls == []  # the per-class report and confusion matrix come from the final evaluation: no second pass
    matrix = summary["confusion_matrix"]["matrix"]
    assert (matrix[0][0] + matrix[1][1]) / sum(map(sum, matrix)) == pytest.approx(summary["eval/accuracy"])

    # predictions of an earlier step are not the final model's: the report evaluates again
    def evaluated(*args, predictions_out, **kwargs):
        predictions_out.append("fresh")
        return {}, 1

    monkeypatch.setattr(report_module, "evaluate_objective", evaluated)
    objective = SimpleNamespace(report=lambda predictions: {"read": predictions})
    trainer = SimpleNamespace(
        objective=objective,
        eval_set=[1, 2],
        state=SimpleNamespace(step=10),
        last_predictions=(9, ["stale"]),
        **dict.fromkeys(("model", "collate", "device", "dist"), None),
        cfg=SimpleNamespace(batch_size=2, eval_batches=None),
        precision=SimpleNamespace(autocast=None),
    )
    assert report_module.evaluation_report(trainer) == {"read": ["fresh"]}
    trainer.last_predictions = (10, ["final"])
    assert report_module.evaluation_report(trainer) == {"read": ["final"]}


def test_classification_beats_majority_and_exports(data, tmp_path):
    files = [f"data.train_file={data / 'train.tsv'}", f"data.eval_file={data / 'dev.tsv'}"]
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        ["task=classification", *TINY_SCRATCH, *FAST, *files, "finetune.class_weights=auto"],
    )
    assert summary["best/accuracy"] > summary["baseline/majority_accuracy"] + 0.1, summary
    assert {"eval/macro_f1", "eval/f1"} <= set(summary)
    # the final model's per-class scores and confusion matrix, consistent with its accuracy
    matrix = summary["confusion_matrix"]["matrix"]
    assert summary["confusion_matrix"]["labels"] == ["0", "1"] == list(summary["per_class"])
    assert sum(map(sum, matrix)) == sum(row["support"] for row in summary["per_class"].values())
    assert (matrix[0][0] + matrix[1][1]) / sum(map(sum, matrix)) == pytest.approx(summary["eval/accuracy"])
    assert summary["per_class"]["1"]["f1"] == pytest.approx(summary["eval/f1"])
    for picture in ("curves.png", "confusion.png", "f1_per_class.png"):
        assert (tmp_path / "run" / picture).stat().st_size > 1000, picture
    transformers = pytest.importorskip("transformers")
    run_command(export, "export", tmp_path / "e", [f"ckpt={tmp_path / 'run'}", f"out={tmp_path / 'hf'}"])
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    encoded = tokenizer(["the film was great and new", "the book was dull"], padding=True, return_tensors="pt")
    from lmtrain.models.loading import load_checkpoint

    ours, _, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "best")
    with torch.no_grad():
        expected = hf(**encoded).logits
        got = ours.heads["classifier"](
            ours.backbone(encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"])
        )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert hf.config.id2label == {0: "0", 1: "1"}


def test_generation_beats_unigram_and_decodes_samples(data, tmp_path):
    gpt = make_checkpoint(
        tmp_path / "outputs" / "pretrain" / "gpt",
        causal=True,
        texts=[
            json.loads(line)["prompt"] + json.loads(line)["completion"]
            for line in (data / "pairs.jsonl").read_text().splitlines()
        ],
    )
    summary = run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        [
            "task=generation",
            f"init={gpt}",
            *FAST,
            f"data.train_file={data / 'pairs.jsonl'}",
            "task.samples=3",
            "task.max_new_tokens=4",
        ],
    )
    assert summary["best/ppl"] < summary["baseline/unigram_ppl"], summary
    assert len(summary["samples"]) == 3 and all(
        {"prompt", "reference", "generated"} <= set(s) for s in summary["samples"]
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the farmer\n")
    records = run_command(
        predict, "predict", tmp_path / "p", [f"ckpt={tmp_path / 'run'}", f"input={prompts}", "task.max_new_tokens=2"]
    )
    assert records[0]["prompt"] == "the farmer" and len(records[0]["completion"].split()) <= 2


def test_default_init_finds_the_latest_compatible_pretrain_run(data, tmp_path):
    texts = ["Alice visited Paris .", "the Acme Corp office in Lima hired Bob ."] * 10
    make_checkpoint(tmp_path / "outputs" / "pretrain" / "a_gpt", causal=True, texts=texts)
    bert = make_checkpoint(tmp_path / "outputs" / "pretrain" / "b_bert", causal=False, texts=texts)
    summary = run_command(
        finetune,
        "finetune",
        tmp_path,
        ["task=ner", *FAST, *ner_files(data), "trainer.max_steps=2", "trainer.eval_every=0"],
    )
    assert summary["init"] == str(Path("outputs/pretrain") / bert.name)


def test_freeze_backbone_leaves_its_weights_unchanged(data, tmp_path):
    bert = make_checkpoint(tmp_path / "bert", causal=False, texts=["Alice visited Paris ."] * 20)
    run_command(
        finetune,
        "finetune",
        tmp_path / "run",
        ["task=ner", f"init={bert}", *FAST, *ner_files(data), "trainer.max_steps=5", "finetune.freeze_backbone=true"],
    )
    from safetensors.torch import load_file

    before = load_file(bert / "checkpoints" / "last" / "model.safetensors")
    after = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    backbone = [k for k in after if k.startswith("backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trainable_parameters"] == sum(after[k].numel() for k in after if k.startswith("heads."))


@pytest.mark.parametrize(
    "case", ["unseen_label", "missing_column", "not_a_model", "generation_on_bert", "no_pretrained_run"]
)
def test_errors_say_what_is_wrong(case, data, tmp_path):
    overrides, expected = ["task=ner", *FAST, *ner_files(data)], ""
    if case == "unseen_label":
        dev = tmp_path / "dev.conll"
        dev.write_text("Zed B-MISC\nran O\n")
        overrides = ["task=ner", "init=scratch", f"data.train_file={data / 'train.conll'}", f"data.eval_file={dev}"]
        expected = f"{dev}, line 1: label 'B-MISC' does not occur in the training data"
    elif case == "missing_column":
        overrides = ["task=classification", f"data.train_file={data / 'train.tsv'}", "data.text_column=review"]
        expected = "data.text_column=review"
    elif case == "not_a_model":
        (tmp_path / "folder").mkdir()
        overrides.append(f"init={tmp_path / 'folder'}")
        expected = "is not a model: expected a run directory"
    elif case == "generation_on_bert":
        bert = make_checkpoint(tmp_path / "bert", causal=False, texts=["the cat says meow"] * 20)
        overrides = ["task=generation", f"init={bert}", f"data.train_file={data / 'pairs.jsonl'}"]
        expected = "this task needs a causal LM head (next-token prediction), but init="
    else:
        expected = "Run `lmtrain pretrain model=bert` first"
    with pytest.raises(UserError) as error:
        run_command(finetune, "finetune", tmp_path / "work", overrides)
    assert expected in str(error.value)

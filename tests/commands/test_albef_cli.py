"""`lmtrain pretrain model=albef`, `finetune task=retrieval` and `predict` end to end in a temp directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli

# A run of seconds: ALBEF at width 32 on 512 generated scenes. The masked-LM loss is off here: trained
# from scratch at this size, its gradients keep the text [CLS] from telling captions apart within a few
# hundred steps (the default preset, 4x wider, learns with it).
TINY_ALBEF = [
    "model=albef",
    "trainer.progress=false",
    "model.n_layers=2",
    "model.d_model=32",
    "model.d_ff=64",
    "model.vision_layers=1",
    "model.vision_d_model=32",
    "model.vision_d_ff=64",
    "model.embed_dim=16",
    "data.shapes_train=512",
    "data.shapes_eval=50",
    "trainer.batch_size=16",
    "model.queue_size=64",
    "objective.queue_start=1000",
    "objective.mlm_weight=0",
    "trainer.save_every=0",
    "data.cache_dir=lmtrain-cache",
]


@pytest.fixture(scope="module")
def albef_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("albef")
    result = run_cli(
        "pretrain",
        *TINY_ALBEF,
        "trainer.max_steps=500",
        "trainer.eval_every=250",
        "hydra.run.dir=outputs/pretrain/tiny",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "outputs" / "pretrain" / "tiny"


def test_pretrain_writes_the_run_directory_and_beats_chance(albef_run):
    for name in ("metrics.jsonl", "summary.json", "tokenizer.json", ".hydra/config.yaml"):
        assert (albef_run / name).exists(), name
    last = albef_run / "checkpoints" / "last"
    assert (last / "model.safetensors").exists() and json.loads((last / "model.json").read_text())["family"] == "albef"
    summary = json.loads((albef_run / "summary.json").read_text())
    chance = (summary["baseline/chance_r1"] + summary["baseline/chance_r5"] + summary["baseline/chance_r10"]) / 3
    assert summary["eval/itc_r_mean"] > 1.5 * chance, summary
    events = [json.loads(line) for line in (albef_run / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if "train/itc_loss" in e]
    assert {"train/itm_loss", "train/itm_acc", "train/alpha", "train/temp"} <= set(train[0])
    assert train[-1]["train/itc_loss"] < train[0]["train/itc_loss"]


def test_predict_ranks_images_for_captions_and_captions_for_images(albef_run, tmp_path):
    from lmtrain.data.shapes import shape_scenes

    scenes = shape_scenes(6, 11, side=64, unique=True)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (img, _) in enumerate(scenes):
        img.save(folder / f"{i}.png")
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(c for _, c in scenes) + "\n")
    result = run_cli(
        "predict", f"ckpt={albef_run}", f"input={captions}", f"task.images={folder}", "task.top_k=3", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6 and all(len(line.split("\t")) == 6 for line in lines)  # 3 x (image, score)
    out = tmp_path / "p.jsonl"
    result = run_cli(
        "predict",
        f"ckpt={albef_run}",
        f"input={folder / '0.png'}",
        f"task.captions={captions}",
        "task.top_k=2",
        f"output={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["query"].endswith("0.png") and len(record["matches"]) == 2
    assert {"caption", "score", "similarity"} <= set(record["matches"][0])


def test_finetune_retrieval_from_the_pretrained_run(albef_run, tmp_path):
    # several captions per image: two phrasings of each generated scene, ALBEF JSON with a caption list
    from lmtrain.data.shapes import shape_scenes

    entries = []
    (tmp_path / "imgs").mkdir()
    for i, (img, caption) in enumerate(shape_scenes(80, 21, side=64)):
        img.save(tmp_path / "imgs" / f"{i}.png")
        entries.append({"image": f"{i}.png", "caption": [caption, caption.replace("a ", "one ", 1)]})
    (tmp_path / "train.json").write_text(json.dumps(entries[:64]))
    (tmp_path / "dev.json").write_text(json.dumps(entries[64:]))
    result = run_cli(
        "finetune",
        "task=retrieval",
        f"init={albef_run}",
        f"data.train_file={tmp_path / 'train.json'}",
        f"data.eval_file={tmp_path / 'dev.json'}",
        f"data.image_root={tmp_path / 'imgs'}",
        "trainer.max_steps=20",
        "trainer.batch_size=16",
        "trainer.eval_every=10",
        "trainer.progress=false",
        "task.rerank_k=4",
        "hydra.run.dir=ft",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert summary["task"] == "retrieval" and summary["eval_images"] == 16 and summary["eval_pairs"] == 32
    assert {"eval/txt_r1", "eval/txt_r5", "eval/txt_r10", "eval/img_r1", "eval/img_r10", "eval/r_mean"} <= set(summary)
    assert summary["best/r_mean"] >= summary["eval/r_mean"] - 1e-9
    meta = json.loads((tmp_path / "ft" / "checkpoints" / "last" / "model.json").read_text())
    assert meta["task"]["name"] == "retrieval" and meta["heads"] == []


def test_finetune_retrieval_with_a_bert_text_encoder(tmp_path):
    # the text encoder from an lmtrain BERT run, the image encoder from scratch; bundled shapes data
    bert = run_cli(
        "pretrain",
        "debug=tiny",
        "trainer.progress=false",
        "trainer.max_steps=2",
        "trainer.eval_every=0",
        "data=lee",
        "hydra.run.dir=bert",
        cwd=tmp_path,
    )
    assert bert.returncode == 0, bert.stderr[-2000:]
    result = run_cli(
        "finetune",
        "task=retrieval",
        "init=bert",
        "data.shapes_train=64",
        "data.shapes_eval=16",
        "trainer.max_steps=4",
        "trainer.batch_size=8",
        "trainer.eval_every=0",
        "model.queue_size=32",
        "model.vision_d_model=32",
        "model.vision_d_ff=64",
        "model.vision_layers=1",
        "task.rerank_k=4",
        "trainer.progress=false",
        "hydra.run.dir=ft",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert "(text)" in summary["init"] and summary["eval_images"] == 16


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["model.queue_size=100", "trainer.batch_size=16"],
            "model.queue_size=100 is not a multiple of the global batch size 16",
        ),
        (
            ["trainer.batch_size=1", "model.queue_size=64"],
            "trainer.batch_size=1: the image-text matching loss draws its hard negatives from the other pairs",
        ),
    ],
)
def test_bad_batch_setups_fail_up_front(tmp_path, overrides, message):
    result = run_cli("pretrain", "model=albef", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def _captions_dir(tmp_path: Path, broken: str | None) -> Path:
    Image.new("RGB", (24, 24), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (24, 24), (30, 30, 200)).save(tmp_path / "b.png")
    lines = ["image,caption", "a.png,a red picture", "b.png,a blue picture"] * 1
    if broken:
        lines.append(f"{broken},something else")
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "captions.csv"


@pytest.mark.parametrize(
    "broken,message",
    [
        ("missing.png", "missing.png does not exist"),
        ("bad.png", "bad.png cannot be read"),
    ],
)
def test_bad_images_are_named(tmp_path, broken, message):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    captions = _captions_dir(tmp_path, broken)
    result = run_cli(
        "pretrain",
        "model=albef",
        "data=captions",
        f"data.train_files=[{captions}]",
        "data.eval_files=[" + str(captions) + "]",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and message in " ".join(result.stderr.split()), result.stderr[-2000:]


def test_bad_json_is_named(tmp_path):
    bad = tmp_path / "ann.json"
    bad.write_text('[{"image": "a.png", "caption": "x"')
    result = run_cli("pretrain", "model=albef", "data=captions", f"data.train_files=[{bad}]", cwd=tmp_path)
    assert result.returncode == 2 and "ann.json is not valid JSON" in " ".join(result.stderr.split())


def test_resume_continues_exactly(tmp_path):
    # momentum encoders, queues, the alpha ramp's step count and the RNG all live in the checkpoint
    tiny = [
        *TINY_ALBEF,
        "objective.mlm_weight=1",
        "objective.queue_start=0",
        "data.shapes_train=64",
        "data.shapes_eval=16",
        "model.queue_size=32",
        "trainer.batch_size=8",
        "trainer.max_steps=6",
        "trainer.log_every=1",
        "trainer.eval_every=0",
        "trainer.keep_last=0",
        "trainer.save_every=3",
    ]
    full = run_cli("pretrain", *tiny, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    resumed = run_cli(
        "pretrain",
        *tiny,
        "hydra.run.dir=resumed",
        f"trainer.resume={tmp_path / 'full/checkpoints/step-3'}",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def losses(run):
        events = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {e["step"]: e["train/loss"] for e in events if "train/loss" in e and e["step"] > 3}

    assert losses("full") == pytest.approx(losses("resumed"), rel=1e-6, abs=1e-7) and len(losses("full")) == 3


def test_finetune_retrieval_without_a_pretrained_albef_says_what_to_run(tmp_path):
    result = run_cli("finetune", "task=retrieval", cwd=tmp_path)
    assert result.returncode == 2
    assert "Run `lmtrain pretrain model=albef` first" in " ".join(result.stderr.split())


@pytest.mark.parametrize("command", [["pretrain", "model=albef", "data=captions"], ["finetune", "task=retrieval"]])
def test_caption_image_paths_outside_the_root_are_refused(tmp_path, command):
    captions = _captions_dir(tmp_path, "../outside.png")
    files = "data.train_files=[{}]" if command[0] == "pretrain" else "data.train_file={}"
    result = run_cli(
        *command,
        files.format(captions),
        f"data.image_root={tmp_path}",
        "init=scratch" if command[0] == "finetune" else "trainer.progress=false",
        cwd=tmp_path,
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2 and "captions.csv, line 4: image path '../outside.png' leads outside" in message, (
        result.stderr[-2000:]
    )

"""A key that the chosen option does not read is refused, never silently ignored: a data key of another data source
or one the objective does not use, a fine-tuning option the task does not read, an embedding method's key under
another method."""

from __future__ import annotations

import pytest

from lmtrain.cli.main import main
from lmtrain.commands.config_validation import check_config
from tests.conftest import compose_config

REFUSED = [
    # pretraining text: bundled, your files, a `datasets` dataset
    (
        "pretrain",
        ["data.train_files=[my.txt]"],
        "data.train_files=['my.txt'] is read only from your own text files",
        "data=text",
    ),
    (
        "pretrain",
        ["data=lee", "data.path=wikitext"],
        "data.path=wikitext is read only from a `datasets` dataset",
        "data=hf",
    ),
    (
        "pretrain",
        ["data=hf", "data.path=x", "data.train_files=[a.txt]"],
        "read only from your own text files",
        "data=text",
    ),
    (
        "pretrain",
        ["data=text", "data.train_files=[a.txt]", "data.bundled=[lee_background.cor]"],
        "data.bundled=['lee_background.cor'] is read only from the bundled corpora",
        "data=lee_wiki",
    ),
    ("pretrain", ["data=text", "data.train_files=[a.txt]", "data.streaming=true"], "data.streaming=True", "data=hf"),
    # image-caption pairs: generated shapes or your captions files
    (
        "pretrain",
        ["model=albef", "data.train_files=[captions.txt]"],
        "read only from your own captions files",
        "data=captions",
    ),
    (
        "pretrain",
        ["model=albef", "data=captions", "data.train_files=[c.txt]", "data.shapes_train=100"],
        "data.shapes_train=100 is read only from the generated shapes scenes",
        "data=shapes",
    ),
    # a typed key is refused even when its value equals the default
    (
        "pretrain",
        ["model=albef", "data=captions", "data.train_files=[c.txt]", "data.shapes_train=4000"],
        "data.shapes_train=4000 is read only from the generated shapes scenes",
        "data=shapes",
    ),
    # fine-tuning data: files (or the task's bundled data) or a `datasets` dataset
    (
        "finetune",
        ["task=ner", "data.path=conll2003"],
        "data.path=conll2003 is read only from a `datasets` dataset",
        "data.source=hf",
    ),
    (
        "finetune",
        ["task=ner", "data.source=hf", "data.path=x", "data.train_file=a.conll"],
        "data.train_file=a.conll is read only from files",
        "data.source=files",
    ),
    (
        "finetune",
        ["task=classification", "data.source=hf", "data.path=x", "data.header=true"],
        "data.header=True is read only from files",
        "data.source=files",
    ),
    (
        "finetune",
        ["task=retrieval", "data.train_file=c.txt", "data.shapes_train=100"],
        "data.shapes_train=100 is read only from the generated shapes scenes",
        "no data.train_file",
    ),
    (
        "finetune",
        ["task=retrieval", "data.image_root=images"],
        "data.image_root=images is read only from",
        "data.train_file=",
    ),
    # keys that the chosen objective does not read
    ("pretrain", ["model=gpt", "data.dupe_factor=3"], "data.dupe_factor=3 is read only by", "objective=clm"),
    (
        "pretrain",
        ["model=roberta", "data.short_seq_prob=0.2"],
        "data.short_seq_prob=0.2 is read only by",
        "objective=mlm",
    ),
    (
        "pretrain",
        ["model=bert", "data.packing=doc_sentences"],
        "data.packing=doc_sentences is read only by",
        "objective=mlm_nsp",
    ),
    # fine-tuning options that the chosen task does not read (its schema's UNREAD_FINETUNE)
    (
        "finetune",
        ["task=retrieval", "finetune.head_lr=0.01"],
        "finetune.head_lr=0.01 is not read by task=retrieval",
        "Drop",
    ),
    (
        "finetune",
        ["task=retrieval", "finetune.freeze_backbone=false"],  # typed, though the default's way: refused all the same
        "finetune.freeze_backbone=False is not read by task=retrieval: retrieval fine-tunes the whole ALBEF model",
        "Drop the key",
    ),
    ("finetune", ["task=retrieval", "finetune.class_weights=auto"], "no classes to weight", "Drop the key"),
    (
        "finetune",
        ["task=generation", "finetune.head_dropout=0.2"],
        "finetune.head_dropout=0.2 is not read by task=generation: generation keeps the backbone's language-model",
        "Drop the key",
    ),
    ("finetune", ["task=generation", "finetune.class_weights=[1,2]"], "is not read by task=generation", "Drop"),
    # word vectors: a key of one method under another
    # (each method has its own schema: a key of another method is no key of the chosen one's)
    ("embed", ["method=glove", "embed.sg=1"], "Key 'sg' not in 'GloveConfig'", "not a key of the glove word-vector"),
    ("embed", ["embed.x_max=3"], "Key 'x_max' not in 'Word2VecConfig'", "not a key of the word2vec word-vector"),
    ("embed", ["path=vectors.txt"], "path=vectors.txt is read only by method=load", "method=word2vec would"),
    (
        "embed",
        ["method=load", "path=v.txt", "embed.epochs=3"],
        "Key 'epochs' not in 'LoadVectorsConfig'",
        "not a key of the load word-vector",
    ),
]


def _no_work(monkeypatch) -> None:
    """Any command that gets as far as running fails at once: what is refused is refused before any work."""
    import importlib

    def ran(cfg):
        raise AssertionError("the command ran")

    for command in ("pretrain", "finetune", "embed"):
        monkeypatch.setattr(importlib.import_module(f"lmtrain.commands.{command}"), "run", ran)


@pytest.mark.parametrize("command,overrides,message,choice", REFUSED)
def test_a_key_the_chosen_source_ignores_is_refused(tmp_path, monkeypatch, capsys, command, overrides, message, choice):
    monkeypatch.chdir(tmp_path)
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as done:
        main([command, *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    err = " ".join(capsys.readouterr().err.split())
    assert done.value.code == 2, err
    assert message in err and choice in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command,overrides",
    [
        ("pretrain", ["data=text", "data.train_files=[a.txt]", "data.eval_files=[b.txt]", "data.format=jsonl"]),
        ("pretrain", ["data=lee", "data.eval_files=[dev.txt]", "data.documents=blank_line"]),
        ("pretrain", ["data=hf", "data.path=x", "data.eval_split=validation", "data.text_field=body"]),
        ("pretrain", ["model=bert", "data.short_seq_prob=0.2", "data.dupe_factor=2"]),
        ("pretrain", ["model=roberta", "data.packing=doc_sentences"]),
        ("pretrain", ["model=albef", "data.shapes_train=100"]),
        ("finetune", ["task=ner", "data.source=hf", "data.path=x", "data.tag_column=ner_tags"]),
        ("finetune", ["task=ner", "data.train_file=a.conll", "data.format=conll"]),
        ("finetune", ["task=retrieval", "data.train_file=c.txt", "data.image_root=images"]),
        ("finetune", ["task=generation", "finetune.head_lr=0.01", "finetune.freeze_layers=1"]),
        ("finetune", ["task=ner", "finetune.class_weights=auto", "finetune.head_dropout=0.2"]),
        ("embed", ["method=glove", "embed.x_max=5", "embed.epochs=2"]),
        ("embed", ["method=load", "path=v.kv", "embed.allow_pickle=true"]),
    ],
)
def test_keys_the_chosen_source_reads_pass(command, overrides):
    check_config(compose_config(command, overrides), command)


def test_every_preset_sets_only_keys_its_source_reads():
    for command, overrides in (
        [("pretrain", [f"model={m}"]) for m in ("bert", "gpt", "roberta", "elmo", "albef")]
        + [("pretrain", [f"data={d}"]) for d in ("lee", "lee_wiki", "wiki", "text", "hf")]
        + [("pretrain", [f"model={m}", "debug=tiny"]) for m in ("bert", "gpt", "roberta", "elmo", "albef")]
        + [("finetune", [f"task={t}"]) for t in ("ner", "classification", "generation", "retrieval")]
        + [("pretrain", ["experiment=wikitext_gpt"]), ("finetune", ["experiment=conll2003_ner"])]
        + [("embed", [f"method={m}"]) for m in ("word2vec", "glove", "load")]
    ):
        check_config(compose_config(command, overrides), command)

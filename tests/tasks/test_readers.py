"""Readers of labelled data: CoNLL columns, JSON lines, TSV / CSV columns, fastText lines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lmtrain.config import ClassificationDataConfig, NerDataConfig
from lmtrain.errors import UserError
from lmtrain.tasks.conll import check_scheme, iob1_to_bio, read_conll, read_tagged_jsonl
from lmtrain.tasks.tabular import read_fasttext, read_table


def test_conll_documents_blank_lines_and_docstart(tmp_path):
    path = tmp_path / "a.conll"
    # CoNLL-2003 quirks: -DOCSTART- after a document, several blank lines, CRLF endings, no final newline
    path.write_bytes(
        b"EU NNP I-NP I-ORG\r\nrejects VBZ I-VP O\r\n\r\n\r\nPeter NNP I-NP I-PER\r\n"
        b"Blackburn NNP I-NP I-PER\r\n-DOCSTART- -X- O O\r\n\r\nBRUSSELS NNP I-NP I-LOC"
    )
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert [s.tags for s in sentences] == [["I-ORG", "O"], ["I-PER", "I-PER"], ["I-LOC"]]
    assert sentences[1].lines == [5, 6]
    assert [s.tags for s in read_conll(path, tag_column=2)][0] == ["I-NP", "I-VP"]


def test_conll_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("John B-PER\nsmiled O\n\nMary\n")
    with pytest.raises(UserError) as error:
        read_conll(path)
    assert f"{path}, line 4" in str(error.value) and "needs the word and its tag" in str(error.value)
    path.write_text("John NNP B-PER\nsmiled O\n")
    with pytest.raises(UserError, match=r"line 2: 2 columns, but the file's first word line has 3"):
        read_conll(path)


def test_conll_tag_column_that_does_not_exist(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("John B-PER\n")
    with pytest.raises(UserError, match=r"data.tag_column=3 does not exist .* 2 columns"):
        read_conll(path, tag_column=3)


def test_scheme_check_and_iob1_conversion(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("John X-PER\n")
    with pytest.raises(UserError, match=r"line 1: tag 'X-PER' is not O or B-TYPE/I-TYPE"):
        check_scheme(read_conll(path), "bio", "data.train_file")
    assert iob1_to_bio(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]


def test_tagged_jsonl(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}\n\n{"tokens": ["x"], "tags": []}\n')
    with pytest.raises(UserError, match=r"line 3: 'tokens' and 'tags' must be lists of the same length"):
        read_tagged_jsonl(path, "tokens", "tags", "data.train_file")
    path.write_text('{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}\n')
    assert read_tagged_jsonl(path, "tokens", "tags", "k")[0].tags == ["B-PER", "O"]


def _cfg(**values):
    return SimpleNamespace(**{**vars(NerDataConfig()), **vars(ClassificationDataConfig()), **values})


def test_tsv_columns_by_name_and_index(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text('label\tsentence\n1\tit is "great"\n0\tdull\n')
    rows = read_table(path, "tsv", _cfg(text_column="sentence"), "data.train_file")
    assert [(r.text, r.label, r.line) for r in rows] == [('it is "great"', "1", 2), ("dull", "0", 3)]
    pairs = tmp_path / "mrpc.tsv"
    pairs.write_text("1\tA man runs.\tA person runs.\n0\tA cat.\tThe sky.\n")
    rows = read_table(pairs, "tsv", _cfg(text_column="1", text_pair_column="2", label_column="0"), "k")
    assert rows[0].text_pair == "A person runs." and rows[1].label == "0"


def test_missing_column_is_a_user_error(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"hello, world",1\n')
    with pytest.raises(UserError) as error:
        read_table(path, "csv", _cfg(text_column="review"), "data.train_file")
    assert "data.text_column=review" in str(error.value) and "its columns are text, label" in str(error.value)
    with pytest.raises(UserError, match=r"data.label_column=5: .* has 2 columns"):
        read_table(path, "csv", _cfg(text_column="0", label_column="5"), "data.train_file")
    assert read_table(path, "csv", _cfg(text_column="text"), "k")[0].text == "hello, world"


def test_fasttext_lines(tmp_path):
    path = tmp_path / "a.cor"
    path.write_text("__label__pos a fine film\n__label__neg dull\n")
    assert [(r.label, r.text) for r in read_fasttext(path, "k")] == [("pos", "a fine film"), ("neg", "dull")]
    path.write_text("pos a fine film\n")
    with pytest.raises(UserError, match="line 1: expected '__label__<label> <text>'"):
        read_fasttext(path, "k")


def test_ner_task_reads_iob1_files_as_bio(tmp_path):
    from lmtrain.tasks.ner import NerTask

    train = tmp_path / "eng.train"
    train.write_text(
        "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n"
        "Paul NNP I-NP B-PER\n\n"
    )
    task = NerTask(_cfg(train_file=str(train), eval_file=str(train), format="conll"))
    task.read()
    assert task.train[1].tags == ["B-PER", "I-PER", "B-PER"]
    assert task.labels == ["O", "B-ORG", "B-PER", "I-PER"]


def test_the_lexicon_baseline_tags_each_word_with_its_most_frequent_training_tag(tmp_path):
    from lmtrain.tasks.ner import NerTask

    train, held_out = tmp_path / "train.conll", tmp_path / "dev.conll"
    # Paris: LOC twice, PER once -> LOC; Jordan: PER, then LOC, a tie -> PER, the tag seen first
    train.write_text("Paris B-LOC\nJordan B-PER\n\nParis B-PER\nJordan B-LOC\n\nParis B-LOC\nsaid O\n\n")
    held_out.write_text("Paris B-LOC\nJordan B-PER\nLyon B-LOC\n\n")  # Lyon is unseen: O
    task = NerTask(_cfg(train_file=str(train), eval_file=str(held_out), format="conll"))
    task.read()
    baselines = task.baselines()
    # the lexicon tags Paris LOC, Jordan PER, Lyon O: 2 of the 3 gold entities, no false one
    assert baselines["baseline/lexicon_f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))
    assert baselines["baseline/all_o_acc"] == 0.0


@pytest.mark.parametrize(
    "name,fmt,content,line",
    [
        ("a.tsv", "tsv", "label\tsentence\n1\tgood\n\tno label here\n0\tbad\n", 3),
        ("a.csv", "csv", "sentence,label\ngood,1\nbad,0\nno label here,  \n", 4),
        ("a.csv", "csv", "sentence,label\ngood,1\nshort row\n", 3),
    ],
)
def test_empty_or_missing_label_cell_is_an_error_naming_file_and_line(tmp_path, name, fmt, content, line):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as error:
        read_table(path, fmt, _cfg(text_column="sentence"), "data.train_file")
    assert f"{path}, line {line}" in str(error.value)


def test_empty_label_in_jsonl_and_fasttext_is_an_error(tmp_path):
    from lmtrain.tasks.tabular import read_labelled_jsonl

    path = tmp_path / "a.jsonl"
    path.write_text('{"sentence": "good", "label": "1"}\n{"sentence": "meh", "label": ""}\n')
    with pytest.raises(UserError, match=r"a.jsonl, line 2: empty label"):
        read_labelled_jsonl(path, _cfg(text_column="sentence"), "data.train_file")
    path.write_text('{"sentence": "good", "label": 1}\n{"sentence": "meh", "label": null}\n')
    with pytest.raises(UserError, match=r"a.jsonl, line 2: empty label"):
        read_labelled_jsonl(path, _cfg(text_column="sentence"), "data.train_file")
    cor = tmp_path / "a.cor"
    cor.write_text("__label__pos fine\n__label__ dull\n")
    with pytest.raises(UserError, match=r"a.cor, line 2: empty label"):
        read_fasttext(cor, "data.train_file")

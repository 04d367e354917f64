"""Familiar command-line habits get a one-paragraph answer in Hydra's terms, with exit code 2."""

from __future__ import annotations

import pytest

from lmtrain.cli.main import main


def _refused(capsys, tmp_path, monkeypatch, *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    err = " ".join(capsys.readouterr().err.split())
    assert done.value.code == 2, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    return err


@pytest.mark.parametrize(
    "args,hydra_form",
    [
        (["--max_steps", "5"], "trainer.max_steps=5"),
        (["--max_steps=5"], "trainer.max_steps=5"),
        (["--trainer.max_steps=5"], "trainer.max_steps=5"),
        (["--trainer.max_steps", "5"], "trainer.max_steps=5"),
        (["--max-steps", "5"], "trainer.max_steps=5"),
        (["--lr", "3e-4", "--model", "gpt"], "optim.lr=3e-4 model=gpt"),
    ],
)
def test_double_dash_options_are_shown_in_hydra_form(capsys, tmp_path, monkeypatch, args, hydra_form):
    err = _refused(capsys, tmp_path, monkeypatch, "pretrain", *args)
    assert f"`lmtrain pretrain {hydra_form} " in err
    assert "LexerNoViableAltException" not in err and "usage:" not in err


def test_an_ambiguous_leaf_lists_the_full_keys(capsys, tmp_path, monkeypatch):
    err = _refused(capsys, tmp_path, monkeypatch, "pretrain", "--name", "x")
    assert "model.name=x" in err and "data.name=x" in err


def test_an_unknown_double_dash_option_says_how_overrides_look(capsys, tmp_path, monkeypatch):
    err = _refused(capsys, tmp_path, monkeypatch, "pretrain", "--frobnicate", "3")
    assert "no key named frobnicate" in err and "key=value" in err


@pytest.mark.parametrize(
    "args,suggestion",
    [
        (["model=bret"], "Did you mean model=bert?"),
        (["trainer.max_step=5"], "Did you mean trainer.max_steps?"),
        (["optim.lrr=1e-3"], "Did you mean optim.lr?"),
        (["data=wikii"], "Did you mean data=wiki?"),
    ],
)
def test_typos_get_the_closest_option_or_key(capsys, tmp_path, monkeypatch, args, suggestion):
    assert suggestion in _refused(capsys, tmp_path, monkeypatch, "pretrain", *args)


def test_finetune_takes_the_debug_preset():
    from tests.conftest import compose_config

    cfg = compose_config("finetune", ["task=ner", "debug=tiny"])
    assert cfg.trainer.max_steps == 20 and cfg.trainer.batch_size == 8
    assert compose_config("finetune", ["task=classification", "debug=tiny"]).trainer.max_steps == 20

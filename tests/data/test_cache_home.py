"""The cache home: ``$XDG_CACHE_HOME/lmtrain`` when that is an absolute path, else ``~/.cache/lmtrain``; the
data cache and the CPU kernel memo both live there unless ``data.cache_dir`` names another folder."""

from __future__ import annotations

import pytest

from lmtrain.config.checks import ConfigRangeError
from lmtrain.config.data import TextDataConfig
from lmtrain.data.pretraining import PretrainingPreparation
from lmtrain.errors import UserError
from lmtrain.files.cache_home import cache_folder, cache_home, open_cache_folder
from tests.conftest import TINY, compose_config


def test_xdg_cache_home_when_absolute_else_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "lmtrain"
    for ignored in ("relative/cache", ""):  # the specification: a relative path is invalid, ignored
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert cache_home() == tmp_path / "home" / ".cache" / "lmtrain"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_home() == tmp_path / "home" / ".cache" / "lmtrain"


def test_data_cache_dir_unset_means_the_cache_home_and_a_given_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = compose_config("pretrain", TINY)
    assert cfg.data.cache_dir is None
    assert PretrainingPreparation(cfg.data, cfg.tokenizer).cache == tmp_path / "xdg" / "lmtrain"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder("~/elsewhere") == tmp_path / "home" / "elsewhere"


def test_a_cache_folder_that_cannot_be_made_names_the_setting_that_chose_it(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    with pytest.raises(UserError, match=rf"data.cache_dir={blocker}: cannot create the cache folder .*a file is in"):
        open_cache_folder(str(blocker))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(UserError, match=rf"XDG_CACHE_HOME={blocker}: .*set XDG_CACHE_HOME, or data.cache_dir, to"):
        open_cache_folder(None)
    assert blocker.read_text() == "mine\n"
    assert open_cache_folder(str(tmp_path / "new" / "cache")).is_dir()  # made, with its parents


def test_the_log_names_the_cache_folder_and_a_relative_xdg_cache_home_is_ignored_aloud(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    with caplog.at_level("INFO", logger="lmtrain.files.cache_home"):
        folder = open_cache_folder(None)
    assert folder == tmp_path / "home" / ".cache" / "lmtrain"
    assert "XDG_CACHE_HOME=relative/cache is not an absolute path, so it is ignored" in caplog.text
    assert f"cache folder {folder} (chosen by the default cache home)" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="lmtrain.files.cache_home"):
        open_cache_folder(str(tmp_path / "mine"))  # data.cache_dir wins: the variable chose nothing
    assert "XDG_CACHE_HOME" not in caplog.text and "(chosen by data.cache_dir)" in caplog.text


def test_an_empty_data_cache_dir_is_refused_not_read_as_unset():
    for empty in ("", "  "):
        with pytest.raises(ConfigRangeError, match="cache_dir=.*must be a folder, or null for the default cache home"):
            TextDataConfig(cache_dir=empty)
    assert TextDataConfig(cache_dir=None).cache_dir is None

"""A plug's `_target_` is checked for its form before anything is imported, then for its base class."""

from __future__ import annotations

import importlib
import sys

import pytest
from omegaconf import OmegaConf

from lmtrain.config.plug_nodes import PLUG_BASES, type_plug_nodes
from lmtrain.errors import UserError
from lmtrain.plugs import plug_class
from tests.conftest import TINY, run_cli


@pytest.mark.parametrize("target", [".foo.Bar", "foo", "foo..Bar", "foo.Bar-baz", "foo.1Bar", "import os;os.Bar", ""])
def test_a_target_that_is_no_dotted_class_path_is_refused_by_its_key(target):
    with pytest.raises(UserError, match="model._target_" + ("='" if target else " is not set")):
        plug_class(target, "model")


def test_a_standard_library_target_is_refused_before_it_is_imported(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    with pytest.raises(UserError, match="standard library"):
        plug_class("this.Foo", "objective")
    assert "this" not in sys.modules and "Beautiful is better" not in capsys.readouterr().out


def test_a_class_that_is_not_a_plug_of_its_group_is_refused(capsys):
    with pytest.raises(UserError, match="task._target_=lmtrain.errors.UserError is not a Task"):
        plug_class("lmtrain.errors.UserError", "task", PLUG_BASES["task"])
    assert plug_class("lmtrain.tasks.ner.NerTask", "task", PLUG_BASES["task"]).__name__ == "NerTask"


def test_the_plug_bases_named_below_the_plugs_layer_are_the_real_ones():
    for group, path in PLUG_BASES.items():
        module, _, name = path.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type), group


def test_a_users_node_naming_a_class_of_another_kind_is_refused():
    cfg = OmegaConf.create({"model": {"_target_": "lmtrain.errors.UserError", "name": "mine"}})
    with pytest.raises(UserError, match="is not a ModelFamily"):
        type_plug_nodes(cfg, "pretrain")


def test_a_relative_or_standard_library_target_on_the_command_line_is_one_paragraph(tmp_path):
    relative = run_cli("pretrain", *TINY, "model._target_=.foo.Bar", cwd=tmp_path)
    assert relative.returncode == 2 and "Traceback" not in relative.stderr
    assert "model._target_='.foo.Bar' is not the dotted path of a class" in relative.stderr
    poem = run_cli("pretrain", *TINY, "model._target_=this.Foo", cwd=tmp_path)
    assert poem.returncode == 2 and "standard library" in poem.stderr and "Beautiful" not in poem.stdout

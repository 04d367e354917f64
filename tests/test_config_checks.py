"""Every numeric setting is checked against its range before any work starts, naming the key and the range."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lmtrain.cli.main import main
from lmtrain.commands.config_validation import check_config
from lmtrain.errors import UserError
from tests.conftest import compose_config, run_cli

BAD = [
    ("pretrain", ["trainer.batch_size=0"], "trainer.batch_size=0: must be >= 1"),
    ("pretrain", ["trainer.batch_size=-4"], "trainer.batch_size=-4: must be >= 1"),
    ("pretrain", ["trainer.grad_accum=0"], "trainer.grad_accum=0: must be >= 1"),
    ("pretrain", ["trainer.max_steps=-1"], "trainer.max_steps=-1: must be >= 1"),
    ("pretrain", ["trainer.keep_last=-1"], "trainer.keep_last=-1: must be >= 0"),
    ("pretrain", ["trainer.cpu_kernels=fast"], "trainer.cpu_kernels=fast: must be one of auto | onednn | torch"),
    ("pretrain", ["trainer.checkpoint_format=zip"], "trainer.checkpoint_format=zip: must be one of full | sharded"),
    ("pretrain", ["model.dropout=2"], "model.dropout=2.0: must be in [0, 1)"),
    ("pretrain", ["data.eval_fraction=1.5"], "data.eval_fraction=1.5: must be in (0, 1)"),
    ("pretrain", ["data.num_proc=0"], "data.num_proc=0: must be >= 1"),
    ("pretrain", ["tokenizer.vocab_size=0"], "tokenizer.vocab_size=0: must be >= 1"),
    ("pretrain", ["tokenizer.vocab_size=4"], "tokenizer.vocab_size=4: must be > 5"),
    ("pretrain", ["model=bert", "data.max_seq_len=1"], "data.max_seq_len=1: must be >= 5 for objective=mlm_nsp"),
    ("pretrain", ["model=roberta", "data.max_seq_len=2"], "data.max_seq_len=2: must be >= 3 for objective=mlm"),
    ("pretrain", ["model=gpt", "data.max_seq_len=1"], "data.max_seq_len=1: must be >= 2 for objective=clm"),
    ("pretrain", ["data.max_seq_len=1024"], "data.max_seq_len=1024: must be <= model.max_positions=512"),
    ("pretrain", ["objective.mask_prob=0"], "objective.mask_prob=0.0: must be in (0, 1]"),
    ("pretrain", ["objective.random_token_prob=0.5"], "objective.random_token_prob=0.5: must be in [0, 0.2"),
    ("pretrain", ["optim.warmup_steps=-10"], "optim.warmup_steps=-10: must be >= 0"),
    ("pretrain", ["optim.warmup_ratio=2"], "optim.warmup_ratio=2.0: must be in [0, 1]"),
    ("pretrain", ["optim.betas=[0.9,1.5]"], "optim.betas=[0.9, 1.5]: must be in [0, 1)"),
    (
        "pretrain",
        ["model=albef", "model.image_size=30"],
        "model.image_size=30: must be a multiple of model.patch_size=8",
    ),
    ("pretrain", ["model=albef", "model.patch_size=0"], "model.patch_size=0: must be >= 1"),
    ("finetune", ["data.eval_fraction=0"], "data.eval_fraction=0.0: must be in (0, 1)"),
    ("finetune", ["finetune.head_dropout=1"], "finetune.head_dropout=1.0: must be in [0, 1)"),
    ("generate", ["top_p=0"], "top_p=0.0: must be in (0, 1]"),
    ("generate", ["max_new_tokens=0"], "max_new_tokens=0: must be >= 1"),
    ("evaluate", ["batch_size=0"], "batch_size=0: must be >= 1"),
    ("embed", ["embed.epochs=0"], "embed.epochs=0: must be >= 1"),
    ("predict", ["batch_size=0"], "batch_size=0: must be >= 1"),
]


@pytest.mark.parametrize("command,overrides,message", BAD)
def test_out_of_range_values_name_the_key_and_the_range(command, overrides, message):
    with pytest.raises(UserError) as error:
        check_config(compose_config(command, overrides), command)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "command,overrides,message",
    [
        ("pretrain", ["trainer.batch_size=0"], "trainer.batch_size=0: must be >= 1"),
        ("pretrain", ["model=bert", "data.max_seq_len=1"], "data.max_seq_len=1: must be >= 5"),
        ("pretrain", ["model.dropout=2"], "model.dropout=2.0: must be in [0, 1)"),
        ("finetune", ["trainer.cpu_kernels=MKL"], "trainer.cpu_kernels=MKL: must be one of auto | onednn | torch"),
        ("generate", ["ckpt=x", "prompt=hi", "top_k=-1"], "top_k=-1: must be >= 0"),
        ("export", ["ckpt=x", "out=y"], None),
    ],
)
def test_cli_exits_2_before_any_work(tmp_path, monkeypatch, capsys, command, overrides, message):
    monkeypatch.chdir(tmp_path)
    if message is None:  # export has no numeric setting: the check passes and the command runs
        with pytest.raises(SystemExit) as done:
            main([command, *overrides])
        assert "must be" not in capsys.readouterr().err
        return
    with pytest.raises(SystemExit) as done:
        main([command, *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    assert done.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run directory


def test_sweep_jobs_are_checked_too(tmp_path):
    out = run_cli(
        "pretrain", "-m", "trainer.batch_size=0", "debug=tiny", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path
    )
    assert out.returncode == 2 and "trainer.batch_size=0: must be >= 1" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr


def test_unset_values_and_defaults_pass():
    check_config(compose_config("pretrain", ["data=text"]), "pretrain")  # data.train_files=??? is the command's
    check_config(compose_config("generate", ["prompt=${oc.env:NOT_SET_ANYWHERE}"]), "generate")


def test_truncate_pair_stops_when_nothing_fits():
    from lmtrain.data.nsp_pairs import _truncate_pair, build_pairs

    a, b = np.ones((2, 4), dtype=np.int64), np.ones((2, 3), dtype=np.int64)
    a, b = _truncate_pair(a, b, -2, random.Random(0))
    assert a.shape[1] == b.shape[1] == 0
    docs = [[np.ones((2, 5), dtype=np.int64)] * 3] * 2
    with pytest.raises(ValueError, match="max_seq_len=1"):
        build_pairs(docs, 1, 0.1, 1, 2, seed=0)

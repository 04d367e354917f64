"""`lmtrain embed` methods are plugs (issue 26, item 4): each its own schema, a user's own method runs
from outside src/, and an embed run starts like every command's (claim, lock, status, `lmtrain runs`)."""

from __future__ import annotations

import json
import os
import textwrap

from lmtrain.config import GloveConfig, LoadVectorsConfig, Word2VecConfig
from lmtrain.config.plug_nodes import config_objects
from lmtrain.embeddings.glove import GloveMethod
from lmtrain.embeddings.io import LoadVectorsMethod
from lmtrain.embeddings.word2vec import Word2VecMethod
from lmtrain.plugs import plug_class
from tests.conftest import compose_config, run_cli

TINY = ["embed.corpus=lee", "embed.epochs=1", "embed.vector_size=8", "progress=false"]


def test_each_method_has_its_own_schema_and_plug_class():
    for method, schema, cls in (
        ("word2vec", Word2VecConfig, Word2VecMethod),
        ("glove", GloveConfig, GloveMethod),
        ("load", LoadVectorsConfig, LoadVectorsMethod),
    ):
        cfg = config_objects(compose_config("embed", [f"method={method}"]), "embed")
        assert type(cfg.embed) is schema and plug_class(cfg.embed, "embed") is cls
    assert not hasattr(Word2VecConfig(), "x_max") and not hasattr(GloveConfig(), "sg")
    assert not hasattr(LoadVectorsConfig(), "epochs")


def test_an_embed_run_is_claimed_locked_and_listed_with_its_status(tmp_path):
    run_dir = tmp_path / "outputs" / "embed" / "w2v"
    result = run_cli("embed", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    recorded = (run_dir / ".lmtrain-files").read_text().splitlines()
    assert {".lock", ".hydra", "status.json", "summary.json", "vectors.bin"} <= set(recorded)
    listed = run_cli("runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]  # one JSON object a run
    assert row["status"] == "finished" and row["command"] == "embed"

    again = run_cli("embed", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr


_USER_METHOD = '''
    """A user's word-vector method: random vectors for the 200 most frequent words (a plug's shape only)."""
    from collections import Counter
    from dataclasses import dataclass

    import numpy as np
    from gensim.models import KeyedVectors

    from lmtrain.config.commands import EmbedTrainingConfig
    from lmtrain.embeddings.method import EmbeddingMethod


    @dataclass
    class RandomConfig(EmbedTrainingConfig):
        _target_: str = "random_vectors.RandomMethod"
        scale: float = 1.0


    class RandomMethod(EmbeddingMethod):
        config_class = RandomConfig

        def train(self, corpus, source, log_epoch, progress):
            counts = Counter(word for doc in corpus for word in doc)
            words = [word for word, _ in counts.most_common(200)]
            kv = KeyedVectors(self.cfg.vector_size)
            rng = np.random.default_rng(self.cfg.seed)
            kv.add_vectors(words, self.cfg.scale * rng.standard_normal((len(words), self.cfg.vector_size)))
            log_epoch(1, {"train/loss": 0.0})
            return kv, [0.0], sum(counts.values())
'''


def test_a_users_own_method_runs_from_outside_lmtrain(tmp_path):
    package = tmp_path / "plugs" / "random_vectors"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(_USER_METHOD))
    (tmp_path / "configs" / "method").mkdir(parents=True)
    (tmp_path / "configs" / "method" / "random.yaml").write_text(
        "# @package _global_\nmethod: random\nembed:\n  _target_: random_vectors.RandomMethod\n  scale: 0.5\n"
        "  corpus: lee_wiki\n  epochs: 1\n  vector_size: 100\n"
    )  # the keys a command line may then change
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "plugs"), os.environ.get("PYTHONPATH", "")])}
    search = f"hydra.searchpath=[file://{tmp_path / 'configs'}]"
    run_dir = tmp_path / "run"
    result = run_cli("embed", "method=random", search, *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "random" and summary["vocab_size"] == 200
    record = json.loads((run_dir / ".hydra" / "plugs.json").read_text())
    assert record["plugs"]["embed"] == {
        "target": "random_vectors.RandomMethod",
        "module": "random_vectors",
        "folder": str(tmp_path / "plugs"),
    }

    refused = run_cli(
        "embed",
        "method=random",
        search,
        *TINY,
        "+embed.sg=1",
        f"hydra.run.dir={tmp_path / 'r2'}",
        cwd=tmp_path,
        env=env,
    )
    assert refused.returncode == 2 and "RandomConfig" in refused.stderr and "sg" in refused.stderr

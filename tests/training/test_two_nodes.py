"""Two simulated nodes on one machine, with no shared data cache: two `torchrun --nnodes=2` agents, each
with its own HOME (so its own ``~/.cache/lmtrain``) and its own working directory (its own copy of the
corpus). Both nodes must train on rank 0's tokenizer and identical examples, and refuse to train when
their data differ."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from tests.conftest import write_corpus

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

TIMEOUT = 600  # two jobs share a small, busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _args(*extra: str) -> list[str]:
    # the same command line on every node: relative paths, the default data.cache_dir (~/.cache/lmtrain)
    return [
        "pretrain",
        "debug=tiny",
        "data=text",
        "data.train_files=[corpus.txt]",
        "model.dropout=0",
        "model.attention_dropout=0",
        "trainer.max_steps=4",
        "trainer.log_every=1",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.preflight=false",
        "hydra.run.dir=run",
        *extra,
    ]


def _node(root: Path, index: int, corpus_seed: int = 0) -> Path:
    node = root / f"node{index}"
    (node / "home").mkdir(parents=True)
    write_corpus(node / "corpus.txt", n_docs=40, seed=corpus_seed)
    return node


def _env(node: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(node / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("XDG_CACHE_HOME", None)  # each node's cache in its own home, as on machines without a shared one
    return env


def _two_nodes(nodes: list[Path], *extra: str) -> list[subprocess.CompletedProcess]:
    """Start both agents at once (they meet at a rendezvous on this machine) and wait for both."""
    endpoint = f"localhost:{_free_port()}"
    agents = []
    for rank, node in enumerate(nodes):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            "--rdzv-id=two-nodes",
            f"--rdzv-conf=is_host={str(rank == 0).lower()}",
            "-m",
            "lmtrain",
            *_args(*extra),
        ]
        agents.append(
            subprocess.Popen(
                command, cwd=node, env=_env(node), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = []
    try:
        for agent in agents:
            out, _ = agent.communicate(timeout=TIMEOUT)
            outputs.append(subprocess.CompletedProcess(agent.args, agent.returncode, out))
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
    return outputs


def _losses(run_dir: Path) -> dict[int, float]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {e["step"]: e["train/loss"] for e in events if "train/loss" in e}


def _examples(node: Path) -> dict[str, dict[str, bytes]]:
    """Cache key -> store file -> content, of a node's cached examples."""
    root = node / "home" / ".cache" / "lmtrain" / "examples"
    return {
        key.name: {str(f.relative_to(key)): f.read_bytes() for f in sorted(key.rglob("*.npy"))}
        for key in root.iterdir()
        if key.is_dir()
    }


def test_two_nodes_without_a_shared_cache_train_on_one_tokenizer_like_one_process(tmp_path):
    nodes = [_node(tmp_path, 0), _node(tmp_path, 1)]
    agents = _two_nodes(nodes, "trainer.batch_size=4")
    for agent in agents:
        assert agent.returncode == 0, agent.stdout[-4000:]
    assert re.search(
        r"all 2 ranks hold the same data: held-out examples \w+, tokenizer \w+, train examples \w+", agents[0].stdout
    ), agents[0].stdout[-4000:]
    # node 1 never trained a tokenizer of its own (rank 0 sent it), and its examples are byte for byte node 0's
    assert (nodes[0] / "home" / ".cache" / "lmtrain" / "tokenizers").is_dir()
    assert not (nodes[1] / "home" / ".cache" / "lmtrain" / "tokenizers").exists()
    assert _examples(nodes[1]) == _examples(nodes[0]) and len(_examples(nodes[0])) == 1

    # one process with the combined batch, on node 0's cache (the same tokenizer)
    single = subprocess.run(
        [sys.executable, "-m", "lmtrain", *_args("trainer.batch_size=8", "hydra.run.dir=single")],
        cwd=nodes[0],
        env=_env(nodes[0]),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert single.returncode == 0, single.stderr[-4000:]
    two, one = _losses(nodes[0] / "run"), _losses(nodes[0] / "single")
    assert sorted(two) == [1, 2, 3, 4]
    assert all(abs(two[s] - one[s]) < 1e-4 for s in two), (two, one)


def test_two_nodes_with_different_data_refuse_to_train_naming_the_rank(tmp_path):
    nodes = [_node(tmp_path, 0), _node(tmp_path, 1, corpus_seed=1)]  # node 1's copy of corpus.txt differs
    agents = _two_nodes(nodes, "trainer.batch_size=4")
    log = "\n".join(agent.stdout for agent in agents)
    assert all(agent.returncode != 0 for agent in agents), log[-4000:]
    assert re.search(r"exitcode\s*:\s*2", log), log[-4000:]  # a UserError on the ranks, not a crash
    assert "do not hold the same data" in log, log[-4000:]
    assert re.search(r"the held-out examples of rank 0 and of rank 1 \(host [^)]+\) differ", log), log[-4000:]
    assert not (nodes[0] / "run" / "metrics.jsonl").exists() or not _losses(nodes[0] / "run")

"""Helpers for kernel tests: watch or break oneDNN's private linear op."""

from __future__ import annotations

import pytest
import torch


def counting_onednn_op(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of ``torch.ops.mkldnn._linear_pointwise`` (each call appends 1 to the returned list)."""
    calls: list[int] = []
    op = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *args: calls.append(1) or op(*args))
    return calls


def breaking_onednn_op(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """Make ``torch.ops.mkldnn._linear_pointwise`` raise RuntimeError(``message``), as a changed PyTorch might."""

    def broken(*args):
        raise RuntimeError(message)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)

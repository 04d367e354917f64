"""The kernel tests' fixture: a switch as a new process has it."""

from __future__ import annotations

import pytest

from lmtrain.kernels import select


@pytest.fixture
def fresh_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing selected and ``auto`` not yet measured, as in a new process; restored afterwards."""
    monkeypatch.setitem(select._state, "active", None)
    monkeypatch.setitem(select._state, "auto", None)

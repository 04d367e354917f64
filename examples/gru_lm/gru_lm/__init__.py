"""A GRU language model as an lmtrain model family: a plug written outside lmtrain, as a user would."""

from gru_lm.family import GruConfig, GruFamily

__all__ = ["GruConfig", "GruFamily"]

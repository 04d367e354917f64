"""Decoding from causal language models (decoding.py) with sampling settings (sampling.py), and masked-token
filling (fill_mask.py). The names callers use are importable from ``lmtrain.generation`` itself."""

from lmtrain.generation.decoding import TextStream, generate, generate_stream, left_pad
from lmtrain.generation.fill_mask import MASK_SPELLINGS, Candidate, encode_for_mask, fill_mask, with_mask_token
from lmtrain.generation.sampling import Sampling, filter_logits, next_tokens, seeded_generator

__all__ = [
    "MASK_SPELLINGS",
    "Candidate",
    "Sampling",
    "TextStream",
    "encode_for_mask",
    "fill_mask",
    "filter_logits",
    "generate",
    "generate_stream",
    "left_pad",
    "next_tokens",
    "seeded_generator",
    "with_mask_token",
]

"""TextTokenizer's batched encoding: the ids-only path gives the full encoding's ids."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lmtrain.config import TokenizerConfig
from lmtrain.data.tokenizer import train_tokenizer

TEXTS = [
    "the farmer visited the old barn in São Paulo",
    "a teacher painted the U.S. fence, didn't she?",
    "",
    " ",
    "naïve 東京 e-mail 3.14 !! \x07 [MASK] Zanzibarian",
    "  leading and trailing spaces  ",
]


@pytest.mark.parametrize("kind,lowercase", [("wordpiece", True), ("wordpiece", False), ("bpe", False)])
def test_ids_only_encoding_gives_the_full_encodings_ids(kind, lowercase):
    roles = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    cfg = TokenizerConfig(kind=kind, vocab_size=120, min_frequency=1, lowercase=lowercase, special_tokens=roles)
    tokenizer = train_tokenizer(TEXTS * 20, OmegaConf.structured(cfg))
    full = [e.ids for e in tokenizer.tokenizer.encode_batch(TEXTS, add_special_tokens=False)]
    assert tokenizer.encode_batch(TEXTS) == full
    assert any(full) and [] in full  # real pieces, and the empty text's none

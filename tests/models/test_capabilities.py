"""A family says what its models can do; a command asks for that, and a model that lacks it is refused by name."""

from __future__ import annotations

import pytest

from lmtrain.config.models import ElmoConfig, TransformerConfig
from lmtrain.errors import UserError
from lmtrain.models.capabilities import Capability, in_words, missing
from lmtrain.models.families import AlbefFamily, ElmoFamily, TransformerFamily
from lmtrain.models.loading import check_capabilities

C = Capability


def test_a_transformer_s_capabilities_follow_its_attention():
    gpt = TransformerFamily(TransformerConfig(causal=True)).config_capabilities()
    bert = TransformerFamily(TransformerConfig(causal=False)).config_capabilities()
    assert C.CAUSAL_LM in gpt and C.MASKED_LM not in gpt and C.TOKEN_FEATURES not in gpt
    assert {C.MASKED_LM, C.TOKEN_FEATURES} <= bert and C.CAUSAL_LM not in bert
    assert C.HF_EXPORT in gpt & bert
    assert TransformerFamily.model_capabilities({"spec": {"causal": True}}) == gpt  # from model.json alike


def test_the_other_families_say_what_they_have():
    assert ElmoFamily(ElmoConfig()).config_capabilities() == {C.TOKEN_FEATURES, C.BIDIRECTIONAL_LM, C.WEIGHTS_EXPORT}
    assert AlbefFamily.model_capabilities({}) == {C.IMAGE_TEXT, C.WEIGHTS_EXPORT}


def test_one_of_several_alternatives_is_enough():
    assert missing({C.MASKED_LM}, (C.CAUSAL_LM, C.MASKED_LM)) == ()
    assert missing({C.MASKED_LM}, C.CAUSAL_LM) == (C.CAUSAL_LM,)
    assert missing(set(), ()) == ()
    assert in_words([C.MASKED_LM, C.CAUSAL_LM]) == "a causal LM head (next-token prediction) and a masked LM head"


def test_a_model_that_lacks_the_capability_is_refused_naming_it():
    meta = {"family": "elmo", "model_name": "elmo", "spec": {}}
    with pytest.raises(
        UserError,
        match=r"ckpt=run holds a model of the elmo family \(elmo\), which lacks a Hugging "
        r"Face architecture to export to that this command needs; it has bidirectional "
        r"token features .*e\.g\. from `lmtrain pretrain model=bert`",
    ):
        check_capabilities(meta, C.HF_EXPORT, "ckpt=run")
    check_capabilities(meta, (C.CAUSAL_LM, C.TOKEN_FEATURES), "ckpt=run")  # has one of them: passes

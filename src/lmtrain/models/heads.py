"""Heads: they turn hidden states into logits (or scores); losses live in objectives.

The pretraining heads (mlm, lm, nsp) belong to the backbone; a fine-tuning head is a
:class:`TaskHead`, chosen by its task (``Task.head_class``) and rebuilt from the description a
checkpoint's ``model.json`` keeps: its ``kind`` is a built-in head's short name or the dotted path of
a task's own head class.
"""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.config.tasks import TAGGER_ENCODERS
from lmtrain.errors import UserError
from lmtrain.kernels import Dropout, Linear, linear
from lmtrain.models.bilstm import BiLSTMEncoder
from lmtrain.models.crf import LinearChainCRF
from lmtrain.models.spec import TransformerSpec
from lmtrain.models.transformer import activation_fn


class MaskedLMHead(nn.Module):
    """BERT's MLM head: dense -> activation -> LayerNorm -> vocabulary projection (+ bias).

    Run it on the selected (masked) positions only: (N, D) -> (N, V). Losses that fuse the
    projection into the cross-entropy call :meth:`transform` and use ``weight`` and ``bias``.
    """

    def __init__(self, spec: TransformerSpec, token_embedding: nn.Embedding):
        super().__init__()
        self.dense = Linear(spec.d_model, spec.d_model)
        self.act = activation_fn(spec.activation)
        self.norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps)
        if spec.tie_embeddings:
            self.weight = token_embedding.weight  # shared Parameter: one matrix, two roles
        else:
            self.weight = nn.Parameter(torch.empty(spec.vocab_size, spec.d_model).normal_(std=spec.init_std))
        self.bias = nn.Parameter(torch.zeros(spec.vocab_size))
        nn.init.normal_(self.dense.weight, std=spec.init_std)
        nn.init.zeros_(self.dense.bias)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D): the features the vocabulary projection reads."""
        return self.norm(self.act(self.dense(hidden)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., V) logits."""
        return linear(self.transform(hidden), self.weight, self.bias)


class CausalLMHead(nn.Module):
    """GPT-2's output projection, tied to the token embedding by default: (..., D) -> (..., V).

    Shares :class:`MaskedLMHead`'s ``transform`` / ``weight`` / ``bias`` surface (here the identity,
    and no bias) so losses can fuse the projection the same way for both.
    """

    weight: torch.Tensor  # (V, D): the token embedding's parameter when tied
    bias: torch.Tensor | None  # a registered None: no bias

    def __init__(self, spec: TransformerSpec, token_embedding: nn.Embedding):
        super().__init__()
        if spec.tie_embeddings:
            self.weight = token_embedding.weight
        else:
            self.weight = nn.Parameter(torch.empty(spec.vocab_size, spec.d_model).normal_(std=spec.init_std))
        self.register_parameter("bias", None)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The features the vocabulary projection reads: ``hidden`` itself."""
        return hidden

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., V) logits."""
        return linear(self.transform(hidden), self.weight, self.bias)


def first_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool, True at each row's first position ([CLS] / <s>, what a pooled head reads)."""
    first = torch.zeros_like(attention_mask, dtype=torch.bool)
    first[:, 0] = True
    return first


class TaskHead(nn.Module):
    """A fine-tuning head: ``(B, T, D)`` hidden states (and their mask) in, the task's scores out.

    A task of your own may bring one (``Task.head_class``): subclass this and give ``from_description``,
    which rebuilds the head from the JSON ``description`` its task wrote (``model.json`` keeps it).
    ``kind`` is the short name of a built-in head; a head without one is recorded by its class path.
    """

    kind = ""

    @classmethod
    def kind_name(cls) -> str:
        """What ``model.json`` records as the head's ``kind``: the short name, else ``package.module.Class``."""
        return cls.kind or f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def from_description(cls, description: dict, d_model: int, init_std: float = 0.02) -> TaskHead:
        """The head of ``description`` (``n_classes``, ``dropout`` and the head's own entries) over ``d_model``."""
        return cls(d_model, int(description["n_classes"]), float(description.get("dropout", 0.0)), init_std)

    def positions_read(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The (B, T) positions whose states this head reads, or None for all of them (the default).

        Where a head names them, a backbone that can (lmtrain's Transformer, ``states_at``) computes its
        last layer at those positions only, and the head gets zeros at the others.
        """
        return None


class PooledClassifierHead(TaskHead):
    """Pool the first token: dropout -> dense -> tanh -> dropout -> output (NSP, classification).

    Args:
        d_model: width of the hidden states.
        n_classes: number of output classes.
        dropout: dropout before the dense layer and before the output layer.
        init_std: std of the normal weight initialisation.
    """

    kind = "pooled_classifier"

    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.0, init_std: float = 0.02):
        super().__init__()
        self.dense = Linear(d_model, d_model)
        self.output = Linear(d_model, n_classes)
        self.dropout = Dropout(dropout)
        for layer in (self.dense, self.output):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T, D) -> (B, D): the first token's state ([CLS] / <s>)."""
        return hidden[:, 0]

    def positions_read(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The first position of each row: the only state :meth:`pool` reads."""
        return first_positions(attention_mask)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) (and the (B, T) mask of real tokens) -> (B, n_classes) logits."""
        pooled = torch.tanh(self.dense(self.dropout(self.pool(hidden, attention_mask))))  # (B, D)
        return self.output(self.dropout(pooled))


class MeanPooledClassifierHead(PooledClassifierHead):
    """Pool the mean of the real tokens' states, then as :class:`PooledClassifierHead`.

    For backbones without a [CLS] token trained to summarise the sequence (ELMo features).
    """

    kind = "mean_pooled_classifier"

    def positions_read(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Every position: the mean reads them all."""
        return None

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T, D) -> (B, D): the mean over real tokens (all tokens when no mask is given)."""
        if attention_mask is None:
            return hidden.mean(1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TokenClassifierHead(TaskHead):
    """A label per token: dropout -> [task biLSTM -> dropout] -> linear, optionally with a CRF (tagging tasks).

    The linear form is BERT's tagger; the biLSTM + CRF form is the task model of ELMo's NER
    (Peters et al. 2018). The CRF's transitions are between words: objectives gather the labelled
    (first sub-word) positions before using ``crf``.

    Args:
        d_model: width of the hidden states.
        n_classes: number of labels.
        dropout: dropout on the hidden states before the encoder (and on its output).
        init_std: std of the normal weight initialisation.
        encoder: ``linear`` (no encoder) or ``bilstm`` (a task biLSTM of ``lstm_dim`` cells per direction).
        lstm_dim: cells per direction of the task biLSTM.
        crf: add a :class:`LinearChainCRF` over the labels (``self.crf``; None without).
    """

    kind = "token_classifier"

    def __init__(
        self,
        d_model: int,
        n_classes: int,
        dropout: float = 0.0,
        init_std: float = 0.02,
        encoder: str = "linear",
        lstm_dim: int = 128,
        crf: bool = False,
    ):
        super().__init__()
        if encoder not in TAGGER_ENCODERS:
            raise ValueError(f"unknown tagger encoder {encoder!r}")
        self.dropout = Dropout(dropout)
        self.encoder = BiLSTMEncoder(d_model, lstm_dim) if encoder == "bilstm" else None
        self.output = Linear(self.encoder.d_out if self.encoder is not None else d_model, n_classes)
        self.crf = LinearChainCRF(n_classes) if crf else None
        nn.init.normal_(self.output.weight, std=init_std)
        nn.init.zeros_(self.output.bias)

    @classmethod
    def from_description(cls, description: dict, d_model: int, init_std: float = 0.02) -> TokenClassifierHead:
        """The tagger of ``description``: ``n_classes``, ``dropout``, and ``encoder`` / ``lstm_dim`` / ``crf``."""
        return cls(
            d_model,
            int(description["n_classes"]),
            float(description.get("dropout", 0.0)),
            init_std,
            encoder=description.get("encoder", "linear"),
            lstm_dim=int(description.get("lstm_dim", 128)),
            crf=bool(description.get("crf", False)),
        )

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(..., D) -> (..., n_classes) scores; with a biLSTM, ``hidden`` is (B, T, D) with its (B, T) mask."""
        x = self.dropout(hidden)
        if self.encoder is not None:
            x = self.dropout(self.encoder(x, attention_mask))  # (B, T, 2 lstm_dim)
        return self.output(x)


# the built-in heads by their short name (older checkpoints' model.json names only these)
BUILT_IN_HEADS = {cls.kind: cls for cls in (TokenClassifierHead, PooledClassifierHead, MeanPooledClassifierHead)}


def task_head_class(kind: str) -> type[TaskHead]:
    """The head class a description's ``kind`` names: a built-in short name, or a task's own class path.

    Raises:
        UserError: a path that does not import or names no :class:`TaskHead` (see :func:`lmtrain.plugs.plug_class`).
    """
    from lmtrain.plugs import plug_class

    if kind in BUILT_IN_HEADS:
        return BUILT_IN_HEADS[kind]
    try:
        return plug_class(kind, "head", TaskHead)
    except UserError as error:
        raise UserError(
            f"the task head of kind {kind!r} (model.json's `task_heads`) cannot be built: {error}"
        ) from None


def build_task_head(description: dict, d_model: int, init_std: float = 0.02) -> nn.Module:
    """A fine-tuning head from its JSON description ``{"kind", "n_classes", "dropout", ...}``.

    Args:
        description: ``kind`` (a short name of ``BUILT_IN_HEADS`` or a :class:`TaskHead`'s class path) and
            what that head reads (``n_classes`` and ``dropout``; a ``token_classifier`` adds ``encoder``,
            ``lstm_dim`` and ``crf``).
        d_model: width of the backbone's output.
        init_std: std of the normal weight initialisation.
    """
    return task_head_class(description["kind"]).from_description(description, d_model, init_std)


def build_head(name: str, spec: TransformerSpec, token_embedding: nn.Embedding) -> nn.Module:
    """The pretraining head called ``name`` (mlm, nsp, lm) for a backbone of ``spec``."""
    if name == "mlm":
        return MaskedLMHead(spec, token_embedding)
    if name == "lm":
        return CausalLMHead(spec, token_embedding)
    if name == "nsp":
        return PooledClassifierHead(spec.d_model, n_classes=2, init_std=spec.init_std)
    raise ValueError(f"unknown head {name!r}")

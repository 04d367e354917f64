"""One Transformer backbone; BERT, RoBERTa and GPT-2 are presets of its switches.

The switches (causal, pre/post norm, segment embeddings, learned/sinusoidal positions, position
offset, activation, embedding norm, final norm) each exist because a shipped preset needs them
and a parity test against `transformers` covers them.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lmtrain.kernels import Dropout, Linear
from lmtrain.models.attention import CrossAttention, KVCache, SelfAttention
from lmtrain.models.embeddings import Embeddings
from lmtrain.models.packing import Unpadding, packed_attention_mask, plan_unpadding
from lmtrain.models.spec import TransformerSpec


def activation_fn(name: str):
    """The activation function called ``name`` in :data:`lmtrain.models.spec.ACTIVATIONS`."""
    if name == "gelu":
        return F.gelu
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    return F.relu


class FeedForward(nn.Module):
    """Position-wise two-layer MLP."""

    def __init__(self, spec: TransformerSpec):
        super().__init__()
        self.up = Linear(spec.d_model, spec.d_ff)
        self.down = Linear(spec.d_ff, spec.d_model)
        self.act = activation_fn(spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    """Attention (+ cross-attention) + feed-forward with residuals, post-norm (BERT) or pre-norm (GPT-2).

    Args:
        spec: the backbone's sizes and switches.
        cross_attention_width: add a cross-attention sublayer (after self-attention, as in BERT's
            decoder layers and ALBEF's fusion layers) to context states of this width; None = none.
    """

    def __init__(self, spec: TransformerSpec, cross_attention_width: int | None = None):
        super().__init__()
        self.pre_norm = spec.norm == "pre"
        self.attn = SelfAttention(spec.d_model, spec.n_heads, spec.attention_dropout)
        self.attn_norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps)
        if cross_attention_width is not None:
            self.cross = CrossAttention(spec.d_model, spec.n_heads, spec.attention_dropout, cross_attention_width)
            self.cross_norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps)
        self.ff = FeedForward(spec)
        self.ff_norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps)
        self.dropout = Dropout(spec.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None = None,
        layer: int = 0,
        context: torch.Tensor | None = None,
        unpadded: Unpadding | None = None,
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D), or (N, D) -> (N, D) for the real tokens of the padded batch ``unpadded``;
        see :meth:`SelfAttention.forward` and :meth:`CrossAttention.forward`."""
        if self.pre_norm:
            x = x + self.dropout(self.attn(self.attn_norm(x), mask, is_causal, cache, layer, unpadded))
            if context is not None:
                x = x + self.dropout(self.cross(self.cross_norm(x), context))
            return x + self.dropout(self.ff(self.ff_norm(x)))
        x = self.attn_norm(x + self.dropout(self.attn(x, mask, is_causal, cache, layer, unpadded)))
        if context is not None:
            x = self.cross_norm(x + self.dropout(self.cross(x, context)))
        return self.ff_norm(x + self.dropout(self.ff(x)))

    def forward_at(
        self, x: torch.Tensor, mask: torch.Tensor | None, queries: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The block's output at the wanted positions only: (N, D), in the order of ``queries[valid]``.

        ``queries``, ``valid``: each row's wanted positions, as :func:`wanted_layout` gives them. Keys and values
        still come from every position of ``x`` (B, T, D); queries, the attention output, the feed-forward and
        the norms run at the wanted positions. Bidirectional self-attention under a boolean SDPA ``mask``
        (B, 1, 1, T) or (B, 1, T, T), or None; no cache, no cross-attention.
        """
        if mask is not None and mask.shape[2] > 1:  # a mask per query (a packed batch's): the queries' rows
            mask = mask.gather(2, queries[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[3]))
        normed = self.attn_norm(x) if self.pre_norm else x
        at_queries = _rows(normed, queries)  # (B, Tq, D)
        attended = self.dropout(self.attn.forward_at(normed, at_queries, mask)[valid])  # (N, D)
        if self.pre_norm:
            h = _rows(x, queries)[valid] + attended
            return h + self.dropout(self.ff(self.ff_norm(h)))
        h = self.attn_norm(at_queries[valid] + attended)
        return self.ff_norm(h + self.dropout(self.ff(h)))


def _rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The states of ``x`` (B, T, D) at ``positions`` (B, Tq): (B, Tq, D)."""
    return x.gather(1, positions[:, :, None].expand(-1, -1, x.shape[-1]))


def wanted_layout(wanted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``wanted`` (B, T) positions, first in column order: ((B, Tq) positions, (B, Tq) bool valid).

    Tq is the most any row wants; a row that wants fewer is filled with other positions, marked invalid.
    ``layout[valid]`` lists the wanted positions in the row-major order of ``x[wanted]``.
    """
    counts = wanted.sum(dim=1)  # (B,)
    most = int(counts.max())
    # a stable sort puts each row's wanted positions (key 0) first, in column order
    positions = torch.sort((~wanted).to(torch.uint8), dim=1, stable=True).indices[:, :most]
    valid = torch.arange(most, device=wanted.device)[None, :] < counts[:, None]
    return positions, valid


class Transformer(nn.Module):
    """The backbone: embeddings, ``n_layers`` blocks, optional final norm -> hidden states.

    ``packing`` (auto | on | off; off until :func:`lmtrain.models.packing.set_packing` sets it) skips a padded
    training batch's padding; see :mod:`lmtrain.models.packing`.
    """

    def __init__(self, spec: TransformerSpec):
        super().__init__()
        self.spec = spec
        self.packing = "off"
        self.embeddings = Embeddings(spec)
        blocks = [Block(spec) for _ in range(spec.n_layers)]
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = nn.LayerNorm(spec.d_model, eps=spec.layer_norm_eps) if spec.final_norm else None
        self.apply(self._init_weights)
        if spec.norm == "pre":
            # GPT-2: scale residual projections by 1/sqrt(2 * n_layers) so the residual stream
            # does not grow with depth.
            for block in blocks:
                for linear in (block.attn.out, block.ff.down):
                    nn.init.normal_(linear.weight, std=spec.init_std / math.sqrt(2 * spec.n_layers))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.spec.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def attention_mask(
        self, attention_mask: torch.Tensor | None, q_len: int, k_len: int
    ) -> tuple[torch.Tensor | None, bool]:
        """Turn a (B, Tk) padding mask into what SDPA wants, plus its `is_causal` flag.

        The fast paths keep SDPA on its fused kernels: no mask at all for unpadded bidirectional
        input (also a CPU batch whose mask shows no padding), the built-in causal flag for unpadded
        causal input without a cache, and for one decoding step (a single query is the newest
        position: causality hides nothing from it) no causal mask at all, only the padding mask.
        """
        if (
            attention_mask is not None
            and attention_mask.device.type == "cpu"
            and not torch.compiler.is_compiling()
            and bool(attention_mask.all())
        ):
            # Packed pretraining blocks carry a mask of all True: without it SDPA keeps its fused
            # kernels (and lmtrain's cheaper dropout). Only on CPU, where reading it back is free.
            attention_mask = None
        if not self.spec.causal or q_len == 1:
            if attention_mask is None:
                return None, False
            return attention_mask.bool()[:, None, None, :], False  # (B, 1, 1, Tk)
        if attention_mask is None and q_len == k_len:
            return None, True
        device = attention_mask.device if attention_mask is not None else self.embeddings.token.weight.device
        q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # (Tq, 1)
        k_pos = torch.arange(k_len, device=device)[None, :]  # (1, Tk)
        mask = (k_pos <= q_pos)[None, None]  # (1, 1, Tq, Tk)
        if attention_mask is not None:
            # A query may always see itself, so a left-padded row is never fully masked (no NaN).
            mask = (mask & attention_mask.bool()[:, None, None, :]) | (k_pos == q_pos)[None, None]
        return mask, False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Hidden states of ``input_ids``.

        Args:
            input_ids: (B, T) token ids.
            attention_mask: (B, Tk) with 1/True for real tokens and 0/False for padding; with a
                cache, Tk covers the cached positions too. None = no padding.
            token_type_ids: (B, T) segment ids (ignored without segment embeddings).
            position_ids: (B, T) or None for 0..T-1 (after the cached positions).
            cache: key/value cache for incremental decoding; advanced by T.
        Returns:
            (B, T, D) hidden states.
        """
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=input_ids.device)[None, :]  # (1, T)
        plan = self._unpadding(attention_mask, T, cache)
        if plan is not None:
            x = self._embed_unpadded(plan, input_ids, token_type_ids, position_ids)
            x = self._run_blocks(x, *self._unpadded_mask(plan), None, len(self.blocks), plan)
            return plan.scatter(x if self.final_norm is None else self.final_norm(x))
        mask, is_causal = self.attention_mask(attention_mask, T, past + T)
        return self._encode(input_ids, token_type_ids, position_ids, mask, is_causal, cache)

    def states_at(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        wanted: torch.Tensor,
    ) -> torch.Tensor:
        """The hidden states at the ``wanted`` (B, T) positions only: ``self(input_ids, ...)[wanted]``, (N, D).

        A masked LM reads about 15% of the positions (and NSP the first), a sequence classifier only the
        first: nothing reads the other positions' last-layer states. So the last block computes keys and
        values at every position, and queries, attention output, feed-forward and norms at the wanted ones
        only (:meth:`Block.forward_at`), in an unpadded batch as in a padded one. The same math as the full
        forward (dropout draws aside); the full forward serves causal models, sharded or compiled blocks,
        wanted padding, and batches where some row wants more than half its positions.
        """
        B, T = input_ids.shape
        positions = torch.arange(T, device=input_ids.device)[None, :]  # (1, T)
        plan = self._unpadding(attention_mask, T, None)
        if plan is None:
            layout = self._wanted_only_layout(wanted)
            if layout is None:
                return self(input_ids, attention_mask, token_type_ids)[wanted]
            mask, _ = self.attention_mask(attention_mask, T, T)
            x = self.embeddings(input_ids, token_type_ids, positions)
            return self._last_block_at(self._run_blocks(x, mask, False, None, len(self.blocks) - 1), mask, layout)
        assert attention_mask is not None  # an unpadded batch has padding
        on_padding = bool((wanted & ~attention_mask.bool()).any())
        wanted_rows = plan.to_attention_rows(plan.gather(wanted))  # (R, T): the wanted tokens in attention's rows
        layout = None if on_padding else self._wanted_only_layout(wanted_rows)
        mask, is_causal = self._unpadded_mask(plan)
        x = self._embed_unpadded(plan, input_ids, token_type_ids, positions)
        if layout is None:
            x = self._run_blocks(x, mask, is_causal, None, len(self.blocks), plan)
            return plan.scatter(x if self.final_norm is None else self.final_norm(x))[wanted]
        x = self._run_blocks(x, mask, False, None, len(self.blocks) - 1, plan)
        states = self._last_block_at(plan.to_attention_rows(x), mask, layout)  # in attention's rows' order
        if plan.packing is None:
            return states  # attention's rows are the padded rows: the same order
        slot = torch.full((B * T,), -1, dtype=torch.long, device=x.device)  # padded position -> attention slot
        slot[plan.source] = plan.slots
        rank = torch.full((plan.rows * T,), -1, dtype=torch.long, device=x.device)  # attention slot -> row of states
        rank[wanted_rows.reshape(-1)] = torch.arange(states.shape[0], device=x.device)
        return states[rank[slot[wanted.reshape(-1)]]]

    def _last_block_at(
        self, x: torch.Tensor, mask: torch.Tensor | None, layout: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """``x`` (B, T, D), the states before the last block, through it at the ``layout``'s positions only; (N, D)."""
        last = cast(Block, self.blocks[-1])
        if self.spec.checkpoint_activations and self.training:
            states = checkpoint(last.forward_at, x, mask, *layout, use_reentrant=False)
        else:
            states = last.forward_at(x, mask, *layout)
        return states if self.final_norm is None else self.final_norm(states)

    def _wanted_only_layout(self, wanted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """:func:`wanted_layout` of ``wanted`` where :meth:`states_at` can run the last block at the wanted
        positions alone and it pays (no row wants more than half its positions); None for the full forward."""
        if self.spec.causal or not self.blocks or torch.compiler.is_compiling() or not wanted.numel():
            return None
        last = self.blocks[-1]
        # a sharded block (FSDP's class) gathers its weights in forward hooks, which forward_at would skip
        if type(last) is not Block or hasattr(last, "cross"):
            return None
        queries, valid = wanted_layout(wanted)
        return (queries, valid) if 0 < 2 * queries.shape[1] <= wanted.shape[1] else None

    def _encode(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        """Embeddings, blocks and final norm over (B, T) ids under an SDPA ``mask``; returns (B, T, D)."""
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        x = self._run_blocks(x, mask, is_causal, cache, len(self.blocks))
        if cache is not None:
            cache.advance(input_ids.shape[1])
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x

    def _run_blocks(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
        count: int,
        unpadded: Unpadding | None = None,
    ) -> torch.Tensor:
        """``x`` (B, T, D), or the real tokens (N, D) of ``unpadded``, through the first ``count`` blocks
        (their activations recomputed in backward if asked)."""
        for layer, block in enumerate(self.blocks[:count]):
            if self.spec.checkpoint_activations and self.training and cache is None:
                unpadded_args = () if unpadded is None else (None, 0, None, unpadded)
                x = checkpoint(block, x, mask, is_causal, *unpadded_args, use_reentrant=False)
            elif unpadded is not None:
                x = block(x, mask, is_causal, None, layer, None, unpadded)
            else:
                x = block(x, mask, is_causal, cache, layer)
        return x

    def _embed_unpadded(
        self,
        plan: Unpadding,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        """The embeddings of the padded batch's real tokens alone, each at the position it has padded: (N, D)."""
        B, T = input_ids.shape
        types = None if token_type_ids is None else plan.gather(token_type_ids)[None]
        positions = plan.gather(position_ids.expand(B, T))[None]
        return self.embeddings(plan.gather(input_ids)[None], types, positions)[0]

    def _unpadded_mask(self, plan: Unpadding) -> tuple[torch.Tensor | None, bool]:
        """The SDPA mask (and `is_causal` flag) of attention's rows in an unpadded batch.

        Packed rows: each query sees its own sentence (:func:`packed_attention_mask`). Padded rows:
        :meth:`attention_mask` of the real tokens, with an all-padding row's first key visible: its queries
        are never read, but a query with every key hidden gives NaN in the weights' gradients.
        """
        if plan.packing is not None:
            return packed_attention_mask(plan.packing, self.spec.causal), False
        real = plan.real
        empty = ~real.any(dim=1)
        if bool(empty.any()):
            real = real.clone()
            real[empty, 0] = True
        return self.attention_mask(real, plan.length, plan.length)

    def _unpadding(self, attention_mask: torch.Tensor | None, T: int, cache: KVCache | None) -> Unpadding | None:
        """How this forward's batch skips its padding (``packing``): only in training, with padding, no cache,
        not compiled."""
        if (
            self.packing == "off"
            or not self.training
            or cache is not None
            or attention_mask is None
            or attention_mask.shape[1] != T
            or torch.compiler.is_compiling()
        ):
            return None
        return plan_unpadding(attention_mask, self.packing)

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty key/value cache for decoding up to ``max_len`` positions."""
        weight = self.embeddings.token.weight
        return KVCache(
            self.spec.n_layers, batch_size, self.spec.n_heads, max_len, self.spec.head_dim, weight.device, weight.dtype
        )

"""Multi-head self- and cross-attention through `scaled_dot_product_attention`, with a key/value cache."""

from __future__ import annotations

import torch
from torch import nn

from lmtrain.kernels import Linear, attend, linear
from lmtrain.models.packing import Unpadding


class KVCache:
    """Pre-allocated keys and values of every layer, filled as decoding proceeds.

    Args:
        n_layers: number of attention layers.
        batch_size, n_heads, max_len, head_dim: shape of each layer's buffer.
        device, dtype: where and how the buffers live.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_heads: int,
        max_len: int,
        head_dim: int,
        device: torch.device,
        dtype: torch.dtype,
    ):
        shape = (batch_size, n_heads, max_len, head_dim)  # (B, H, Tmax, Dh)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.length = 0  # positions already filled (the same for every layer)
        self.max_len = max_len

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` (B, H, T, Dh) after the cached positions; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, {end} requested")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled; call once per forward pass, after every layer."""
        self.length += n


class SelfAttention(nn.Module):
    """Fused-QKV multi-head attention; bidirectional or causal.

    Args:
        d_model: model width.
        n_heads: number of heads.
        attention_dropout: dropout on attention probabilities (training only).
    """

    def __init__(self, d_model: int, n_heads: int, attention_dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = Linear(d_model, 3 * d_model)
        self.out = Linear(d_model, d_model)
        self.attention_dropout = attention_dropout

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None = None,
        layer: int = 0,
        unpadded: Unpadding | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` (B, T, D), or over the real tokens ``x`` (N, D) of the padded batch ``unpadded``.

        Args:
            mask: boolean (B, 1, Tq, Tk) or (B, 1, 1, Tk), True where attention is allowed; or None.
            is_causal: use SDPA's built-in causal mask (only valid with ``mask=None``, Tq == Tk).
            cache: key/value cache to extend (decoding); ``layer`` indexes it.
            unpadded: ``x`` holds this padded (B, T) batch's real tokens (no cache).
        Returns:
            (B, T, D) attention output; (N, D) with ``unpadded``.
        """
        if unpadded is not None:
            return self._forward_unpadded(x, unpadded, mask, is_causal)
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).unbind(2)  # 3 x (B, T, H, Dh)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, H, Tk, Dh)
        dropout = self.attention_dropout if self.training else 0.0
        y = attend(q, k, v, mask, is_causal, dropout)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)

    def _forward_unpadded(
        self, x: torch.Tensor, unpadded: Unpadding, mask: torch.Tensor | None, is_causal: bool
    ) -> torch.Tensor:
        """:meth:`forward` of the real tokens ``x`` (N, D) of a padded batch: the projections at those tokens
        only, the attention itself in the padded layout (its keys hidden by ``mask``); returns (N, D)."""
        N, D = x.shape
        R, T, H = unpadded.rows, unpadded.length, self.n_heads
        qkv = unpadded.to_attention_rows(self.qkv(x))  # (R, T, 3D), zeros at the empty slots
        q, k, v = qkv.view(R, T, 3, H, D // H).unbind(2)  # 3 x (R, T, H, Dh)
        dropout = self.attention_dropout if self.training else 0.0
        y = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, is_causal, dropout)  # (R, H, T, Dh)
        return self.out(unpadded.from_attention_rows(y.transpose(1, 2).reshape(R, T, D)))  # (N, D)

    def forward_at(self, x: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attend from the states ``queries`` (B, Tq, D), taken from ``x``, over every position of ``x`` (B, T, D).

        Bidirectional, no cache: :meth:`forward`'s output at the queries' positions, computing the query
        projection at those positions only. ``mask``: as for :meth:`forward`, (B, 1, 1, T) or None.
        Returns (B, Tq, D).
        """
        B, T, D = x.shape
        Tq = queries.shape[1]
        Dh = D // self.n_heads
        weight, bias = self.qkv.weight, self.qkv.bias  # (3D, D), (3D,): rows of q, then k, then v
        q = linear(queries, weight[:D], None if bias is None else bias[:D])
        q = q.view(B, Tq, self.n_heads, Dh).transpose(1, 2)  # (B, H, Tq, Dh)
        kv = linear(x, weight[D:], None if bias is None else bias[D:])
        k, v = kv.view(B, T, 2, self.n_heads, Dh).unbind(2)  # 2 x (B, T, H, Dh)
        dropout = self.attention_dropout if self.training else 0.0
        y = attend(q, k.transpose(1, 2), v.transpose(1, 2), mask, False, dropout)  # (B, H, Tq, Dh)
        return self.out(y.transpose(1, 2).reshape(B, Tq, D))


class CrossAttention(nn.Module):
    """Multi-head attention from queries ``x`` to another sequence ``context`` (ALBEF's fusion layers).

    Args:
        d_model: width of the queries (and of the output).
        n_heads: number of heads.
        attention_dropout: dropout on attention probabilities (training only).
        d_context: width of the context states (e.g. the image encoder's).
    """

    def __init__(self, d_model: int, n_heads: int, attention_dropout: float, d_context: int):
        super().__init__()
        self.n_heads = n_heads
        self.q = Linear(d_model, d_model)
        self.kv = Linear(d_context, 2 * d_model)
        self.out = Linear(d_model, d_model)
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Attend from ``x`` (B, T, D) to every position of ``context`` (B, S, Dc); returns (B, T, D)."""
        B, T, D = x.shape
        S = context.shape[1]
        Dh = D // self.n_heads
        q = self.q(x).view(B, T, self.n_heads, Dh).transpose(1, 2)  # (B, H, T, Dh)
        k, v = self.kv(context).view(B, S, 2, self.n_heads, Dh).unbind(2)  # 2 x (B, S, H, Dh)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, H, S, Dh)
        dropout = self.attention_dropout if self.training else 0.0
        y = attend(q, k, v, None, False, dropout)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)

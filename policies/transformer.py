"""DETR-style transformer layers and fixed sine position embeddings.

Unlike torch.nn.TransformerEncoder/Decoder, positions are added to the queries and keys of every attention
(not once to the input), as in DETR and ACT; values stay position-free. All tensors are batch-first.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, nheads: int, ffn: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, pos: Tensor, pad: Tensor | None = None) -> Tensor:
        """x, pos (B, N, D); pad (B, N) True where a token is padding (ignored as a key)."""
        if self.pre_norm:
            h = self.norm1(x)
            x = x + self.drop1(self.attn(h + pos, h + pos, h, key_padding_mask=pad, need_weights=False)[0])
            return x + self.drop2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x + pos, x + pos, x, key_padding_mask=pad, need_weights=False)[0]))
        return self.norm2(x + self.drop2(self.ffn(x)))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, nheads: int, ffn: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, nheads, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor) -> Tensor:
        """x, query_pos (B or 1, Q, D); memory, memory_pos (B, N, D)."""
        keys = memory + memory_pos
        if self.pre_norm:
            h = self.norm1(x)
            x = x + self.drop1(self.self_attn(h + query_pos, h + query_pos, h, need_weights=False)[0])
            h = self.norm2(x)
            x = x + self.drop2(self.cross_attn(h + query_pos, keys, memory, need_weights=False)[0])
            return x + self.drop3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.drop1(self.self_attn(x + query_pos, x + query_pos, x, need_weights=False)[0]))
        x = self.norm2(x + self.drop2(self.cross_attn(x + query_pos, keys, memory, need_weights=False)[0]))
        return self.norm3(x + self.drop3(self.ffn(x)))


class Encoder(nn.Module):
    def __init__(self, layers: int, dim: int, nheads: int, ffn: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, nheads, ffn, dropout, pre_norm) for _ in range(layers))
        # Pre-norm layers leave their output un-normalized; post-norm layers end in a norm already.
        self.norm = nn.LayerNorm(dim) if pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor, pad: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos, pad)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, layers: int, dim: int, nheads: int, ffn: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, nheads, ffn, dropout, pre_norm) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, query_pos, memory, memory_pos)
        return self.norm(x)


def _frequencies(channels: int, temperature: float = 10000.0) -> Tensor:
    """channels/2 geometric frequencies from 1 down to ~1/temperature."""
    return temperature ** (-torch.arange(channels // 2, dtype=torch.float32) * 2.0 / channels)


def sine_table(length: int, dim: int) -> Tensor:
    """(length, dim) fixed 1D positions: sin of every frequency, then cos (Vaswani et al.)."""
    angles = torch.arange(length, dtype=torch.float32)[:, None] * _frequencies(dim)[None, :]
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    return table if dim % 2 == 0 else torch.cat([table, torch.zeros(length, 1)], dim=1)


def sine_grid(height: int, width: int, dim: int) -> Tensor:
    """(height*width, dim) fixed 2D positions, row-major: half the channels encode y, half x.

    Coordinates are scaled to (0, 2*pi] over the grid, so one table serves any image size.
    """
    half = dim // 2
    freqs = _frequencies(half)
    y = torch.arange(1, height + 1, dtype=torch.float32) / height * 2 * math.pi
    x = torch.arange(1, width + 1, dtype=torch.float32) / width * 2 * math.pi
    ay = (y[:, None] * freqs[None, :])[:, None, :].expand(height, width, -1)
    ax = (x[:, None] * freqs[None, :])[None, :, :].expand(height, width, -1)
    grid = torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=2)
    return grid.reshape(height * width, dim)

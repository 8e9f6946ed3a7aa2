"""Transformer variants of Abnar et al. (section 2, appendix F), from weakest to strongest recurrent bias:

* ``transformer``: encoder with a CLS token (BERT style), full attention;
* ``transformer_seq``: encoder with future masking, classifying from the last token (sequentiality);
* ``universal_transformer_seq``: one layer shared in depth (Dehghani et al.), future masking
  (sequentiality + recursion);
* ``transformer_lm``: a decoder-only language model (future masking, a prediction at every position).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout


class TransformerBackbone(nn.Module):
    """Token + learned position embeddings → pre-norm encoder layers → final LayerNorm.

    ``causal`` masks future positions; ``shared`` applies one layer ``n_layers`` times, adding a learned
    embedding of the step before each application (the Universal Transformer's timestep signal);
    ``cls`` prepends a learned CLS vector at position 0.
    """

    def __init__(
        self, info: DataInfo, dropout: float, d_model: int, n_heads: int, n_layers: int, ff_dim: int,
        causal: bool, shared: bool = False, cls: bool = False, max_len: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.causal, self.shared, self.n_layers, self.pad_id = causal, shared, n_layers, info.get("pad_id", 0)
        positions = (max_len or info.input_shape[0]) + int(cls)
        self.embed = nn.Embedding(info.get("vocab_size"), d_model, padding_idx=self.pad_id)
        self.position = nn.Embedding(positions, d_model)
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02) if cls else None
        n_distinct = 1 if shared else n_layers
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, ff_dim or 4 * d_model, dropout, batch_first=True, norm_first=True)
            for _ in range(n_distinct)
        )
        self.step = nn.Embedding(n_layers, d_model) if shared else None
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states, B × T × d_model (B × (T+1) with a CLS token first)."""
        pad = tokens == self.pad_id
        h = self.embed(tokens)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), 1, -1), h], 1)
            pad = torch.cat([pad.new_zeros(len(h), 1), pad], 1)
        width = h.shape[1]
        if width > self.position.num_embeddings:
            raise ValueError(f"sequence of {width} tokens is longer than the {self.position.num_embeddings} positions (max_len)")
        h = self.dropout(h + self.position(torch.arange(width, device=h.device)))
        mask = torch.triu(torch.ones(width, width, dtype=torch.bool, device=h.device), 1) if self.causal else None
        # with future masking, padding (always after the last token) is never attended to by real tokens
        key_pad = None if self.causal else pad
        for i in range(self.n_layers):
            if self.step is not None:
                h = h + self.step.weight[i]
            h = self.layers[0 if self.shared else i](h, src_mask=mask, src_key_padding_mask=key_pad, is_causal=self.causal)
        return self.norm(h)


class _SequenceClassifier(nn.Module):
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    kinds: ClassVar[tuple[str, ...]] = ("tokens",)
    causal: ClassVar[bool] = True
    shared: ClassVar[bool] = False
    cls: ClassVar[bool] = False

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, d_model: int = 128, n_heads: int = 8, n_layers: int = 6,
        ff_dim: int = 0, max_len: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.backbone = TransformerBackbone(
            info, dropout, d_model, n_heads, n_layers, ff_dim, self.causal, self.shared, self.cls, max_len
        )
        self.out = nn.Linear(d_model, info.num_classes)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(x["tokens"])
        last = hidden[torch.arange(len(hidden), device=hidden.device), x["lengths"] - 1]
        pooled = hidden[:, 0] if self.cls else last
        return self.out(pooled), pooled


@MODELS.register("transformer")
class TransformerClassifier(_SequenceClassifier):
    """Encoder with a CLS token and full attention; classifies from the CLS position."""

    causal, cls = False, True


@MODELS.register("transformer_seq")
class TransformerSeqClassifier(_SequenceClassifier):
    """Encoder with future masking; classifies from the last token."""


@MODELS.register("universal_transformer_seq")
class UniversalTransformerSeqClassifier(_SequenceClassifier):
    """One encoder layer shared across ``n_layers`` steps, future masking, last-token classification.
    Default width 256: with shared parameters it has fewer parameters than the others at 128."""

    shared = True

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, d_model: int = 256, n_heads: int = 8, n_layers: int = 6,
        ff_dim: int = 0, max_len: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(info, dropout, d_model, n_heads, n_layers, ff_dim, max_len)


@MODELS.register("transformer_lm")
class TransformerLanguageModel(_SequenceClassifier):
    """Decoder-only Transformer: future masking, next-token logits at every position."""

    tasks: ClassVar[tuple[str, ...]] = ("language_model",)

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, d_model: int = 512, n_heads: int = 8, n_layers: int = 6,
        ff_dim: int = 0, max_len: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(info, dropout, d_model, n_heads, n_layers, ff_dim, max_len)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(x["tokens"])
        return self.out(hidden), hidden

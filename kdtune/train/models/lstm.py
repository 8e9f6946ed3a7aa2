"""Unidirectional LSTMs (Abnar et al., appendix F): a classifier reading the prefix up to the verb,
and a language model predicting every next token."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout


class LSTMBackbone(nn.Module):
    """Embedding → stacked LSTM → hidden states (B × T × hidden_size); padding sits after each
    sequence, so it never reaches the states of real tokens."""

    def __init__(self, info: DataInfo, dropout: float, embedding_dim: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(info.get("vocab_size"), embedding_dim, padding_idx=info.get("pad_id", 0))
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.dropout(self.embed(tokens)))
        return self.dropout(hidden)


@MODELS.register("lstm")
class LSTMClassifier(nn.Module):
    """Classifies a prefix from the LSTM state at its last token (sequentiality, memory bottleneck and
    recursion). Features: that state."""

    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    kinds: ClassVar[tuple[str, ...]] = ("tokens",)

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, embedding_dim: int = 256, hidden_size: int = 256, num_layers: int = 2
    ) -> None:
        super().__init__()
        self.backbone = LSTMBackbone(info, dropout, embedding_dim, hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, info.num_classes)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(x["tokens"])
        last = hidden[torch.arange(len(hidden), device=hidden.device), x["lengths"] - 1]
        return self.out(last), last


@MODELS.register("lstm_lm")
class LSTMLanguageModel(LSTMClassifier):
    """Next-token prediction at every position. Features: the hidden states (B × T × hidden)."""

    tasks: ClassVar[tuple[str, ...]] = ("language_model",)

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, embedding_dim: int = 512, hidden_size: int = 1024, num_layers: int = 2
    ) -> None:
        super().__init__(info, dropout, embedding_dim, hidden_size, num_layers)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(x["tokens"])
        return self.out(hidden), hidden

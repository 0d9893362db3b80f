"""The projection head that maps an encoder's features into the shared embedding space."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear -> GELU -> Linear -> Dropout, plus a residual from the first Linear, LayerNorm.

    Submodule names (``projection``, ``fc``, ``layer_norm``) are the authors' state_dict keys.
    """

    def __init__(self, in_dim: int, embed_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.projection = nn.Linear(in_dim, embed_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        x = self.dropout(self.fc(self.gelu(projected)))
        return self.layer_norm(x + projected)

"""Graph neural networks for smoothed node features (PyTorch Geometric layers).

Each takes ``(x, edge_index)`` with x of shape (N, D' [+1]) — dense, or the sparse CSR disjoint union the sparse
sampler yields (the first layer's linear map multiplies it sparsely) — and returns logits (N, K).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import GATConv, GCNConv


class GCN(nn.Module):
    """Two GCN layers (Kipf & Welling, 2017) with ReLU and dropout."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 64, dropout: float = 0.5):
        super().__init__()
        self.conv1 = GCNConv(in_features, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(h, self.dropout, self.training), edge_index)


class GAT(nn.Module):
    """Two GAT layers (Veličković et al., 2018): 8 heads × 8 hidden, ELU, dropout 0.5, attention dropout 0.2."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 8, heads: int = 8, dropout: float = 0.5,
                 attention_dropout: float = 0.2):
        super().__init__()
        self.conv1 = GATConv(in_features, hidden, heads=heads, dropout=attention_dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=1, dropout=attention_dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(h, self.dropout, self.training), edge_index)

"""Graph neural networks for smoothed node features (PyTorch Geometric layers).

Each takes ``(x, edge_index)`` with x of shape (N, D' [+1]) — dense, or the sparse CSR disjoint union the sparse
sampler yields (the first linear map multiplies it sparsely) — and returns logits (N, K). Two options are shared:

- ``skip=True`` adds a skip branch, a linear map of each node's own features added to the logits, as in the
  reference code's "skip" models. It reads the same smoothed input as the message passing: a branch on the
  unsmoothed features would let the adversary's change through unsmoothed and void the certificate;
- ``token_width=D`` gives the model a learnable ablation token ``ablation_token`` (an ``nn.Parameter`` of D
  values) that the sampler writes into ablated rows during training and certification.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import APPNP as APPNPPropagation
from torch_geometric.nn import GATConv, GCNConv, Linear


class NodeClassifier(nn.Module):
    """Base of the GNNs: ``forward`` = message passing (``propagate_logits``) [+ skip branch]."""

    def __init__(self, in_features: int, num_classes: int, skip: bool, token_width: int):
        super().__init__()
        self.skip = Linear(in_features, num_classes) if skip else None
        if token_width < 0 or token_width > in_features:
            raise ValueError(f"model.token_width={token_width}: must be in [0, {in_features}] (0 = no learnable token)")
        self.ablation_token = nn.Parameter(torch.zeros(token_width)) if token_width else None

    def propagate_logits(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        logits = self.propagate_logits(x, edge_index)
        return logits if self.skip is None else logits + self.skip(x)


class GCN(NodeClassifier):
    """Two GCN layers (Kipf & Welling, 2017) with ReLU and dropout."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 64,
        dropout: float = 0.5,
        skip: bool = False,
        token_width: int = 0,
    ):
        super().__init__(in_features, num_classes, skip, token_width)
        self.conv1 = GCNConv(in_features, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = dropout

    def propagate_logits(self, x, edge_index):
        h = F.relu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(h, self.dropout, self.training), edge_index)


class GAT(NodeClassifier):
    """Two GAT layers (Veličković et al., 2018): 8 heads × 8 hidden, ELU, dropout 0.5, attention dropout 0.2."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 8,
        heads: int = 8,
        dropout: float = 0.5,
        attention_dropout: float = 0.2,
        skip: bool = False,
        token_width: int = 0,
    ):
        super().__init__(in_features, num_classes, skip, token_width)
        self.conv1 = GATConv(in_features, hidden, heads=heads, dropout=attention_dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=1, dropout=attention_dropout)
        self.dropout = dropout

    def propagate_logits(self, x, edge_index):
        h = F.elu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(h, self.dropout, self.training), edge_index)


class APPNP(NodeClassifier):
    """Predict then propagate (Gasteiger et al., 2019): a two-layer MLP, then K steps of personalised PageRank
    H ← (1 − α) Â H + α H₀ (K = 10, α = 0.1)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 64,
        dropout: float = 0.5,
        steps: int = 10,
        teleport: float = 0.1,
        skip: bool = False,
        token_width: int = 0,
    ):
        super().__init__(in_features, num_classes, skip, token_width)
        self.lin1 = Linear(in_features, hidden)
        self.lin2 = Linear(hidden, num_classes)
        self.propagation = APPNPPropagation(K=steps, alpha=teleport)
        self.dropout = dropout

    def propagate_logits(self, x, edge_index):
        h = F.relu(self.lin1(x))
        return self.propagation(self.lin2(F.dropout(h, self.dropout, self.training)), edge_index)

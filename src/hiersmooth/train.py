"""Noise-augmented training under the same :class:`~hiersmooth.smoothing.Smoothing` that later certifies.

- Images: every step draws one sample of Ψ_x for each image of the batch (``Smoothing.sample_each``) and takes
  a cross-entropy step (Adam or SGD, cosine or constant learning rate per step).
- Graphs (SPEC.md §5): every epoch draws one sample of the training graph's features, takes one step on the
  training nodes' loss, then draws one sample of the validation graph and records the validation nodes' loss;
  training stops after ``patience`` epochs without a better validation loss, and the best state is restored.

A learnable ablation token (``model.ablation_token``) is trained with the model: the sample is built from it,
so the gradient reaches it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch.nn import functional as F

from .data.graphs import GraphSplit
from .devices import check_device
from .inputs import ImageSet
from .progress import progress_bar
from .run_config import TrainingConfig
from .smoothing import Smoothing


def make_optimizer(model: torch.nn.Module, training: TrainingConfig, steps: int):
    """The optimizer and a per-step learning-rate scheduler (cosine from lr to 0 over ``steps``, or constant)."""
    if training.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(), lr=training.lr, momentum=training.momentum, weight_decay=training.weight_decay
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    if training.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, scheduler


def _token(model: torch.nn.Module):
    token = getattr(model, "ablation_token", None)
    return token if isinstance(token, torch.Tensor) else None


def train_images(
    model: torch.nn.Module, smoothing: Smoothing, train: ImageSet, training: TrainingConfig, progress: bool = True
) -> list[dict]:
    """Train ``model`` on noisy samples of ``train``; returns one dict per epoch (loss, noisy accuracy)."""
    device = check_device(training.device, "training.device")
    model.to(device).train()
    images, labels = train.images.to(device), torch.as_tensor(train.labels, device=device)
    batches = math.ceil(train.points / training.batch_size)
    optimizer, scheduler = make_optimizer(model, training, training.epochs * batches)
    generator = torch.Generator(device).manual_seed(training.seed)
    history = []
    bar = progress_bar(progress, training.epochs, "train", unit="epoch")
    for epoch in range(training.epochs):
        order = torch.randperm(train.points, generator=generator, device=device)
        total_loss, correct = 0.0, 0
        for start in range(0, train.points, training.batch_size):
            index = order[start : start + training.batch_size]
            noisy = smoothing.sample_each(images[index], generator, _token(model))
            logits = model(noisy)
            loss = F.cross_entropy(logits, labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            correct += int((logits.argmax(1) == labels[index]).sum())
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total_loss / train.points,
                "accuracy": correct / train.points,
                "lr": scheduler.get_last_lr()[0],
            }
        )
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", acc=f"{history[-1]['accuracy']:.3f}")
        bar.update()
    bar.close()
    model.eval()
    return history


def train_graph(
    model: torch.nn.Module, smoothing: Smoothing, split: GraphSplit, training: TrainingConfig, progress: bool = True
) -> list[dict]:
    """Train ``model`` on noisy samples of the training graph with early stopping on the validation graph's loss
    (best state restored); returns one dict per epoch (loss, accuracy, val_loss, val_accuracy, restored: whether
    this epoch's state is the one kept)."""
    device = check_device(training.device, "training.device")
    model.to(device)
    token = _token(model)
    stages = []
    for graph, targets in (split.training_graph(), split.validation_graph()):
        dense = token is not None or smoothing.noise.dense_input  # a token needs dense rows; dense noise gives them
        features = graph.features.to_dense() if dense else graph.features
        stages.append(
            (
                smoothing.sampler(features.to(device)),
                graph.edge_index.to(device),
                torch.as_tensor(targets, device=device),
                torch.as_tensor(graph.labels[targets], device=device),
            )
        )
    (train_sampler, train_edges, train_nodes, train_labels), (val_sampler, val_edges, val_nodes, val_labels) = stages
    optimizer, scheduler = make_optimizer(model, training, training.epochs)
    generator = torch.Generator(device).manual_seed(training.seed)
    best_loss, best_state, best_epoch, waited, history = np.inf, None, 0, 0, []
    bar = progress_bar(progress, training.epochs, "train", unit="epoch")
    for epoch in range(training.epochs):
        model.train()
        logits = model(_one_sample(train_sampler, generator, _token(model)), train_edges)[train_nodes]
        loss = F.cross_entropy(logits, train_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_logits = model(_one_sample(val_sampler, generator, _token(model)), val_edges)[val_nodes]
            val_loss = float(F.cross_entropy(val_logits, val_labels))
        history.append(
            {
                "epoch": epoch + 1,
                "loss": loss.item(),
                "accuracy": (logits.argmax(1) == train_labels).float().mean().item(),
                "val_loss": val_loss,
                "val_accuracy": (val_logits.argmax(1) == val_labels).float().mean().item(),
            }
        )
        bar.set_postfix(
            loss=f"{loss.item():.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{history[-1]['val_accuracy']:.3f}"
        )
        bar.update()
        if val_loss < best_loss:
            best_loss, best_state, best_epoch, waited = val_loss, copy.deepcopy(model.state_dict()), epoch + 1, 0
        else:
            waited += 1
            if training.patience is not None and waited >= training.patience:
                break
    bar.close()
    if best_state is None:
        raise ValueError("training: the validation loss was never finite; lower training.lr")
    for row in history:
        row["restored"] = row["epoch"] == best_epoch
    model.load_state_dict(best_state)
    model.eval()
    return history


def _one_sample(sampler, generator: torch.Generator, token):
    """One sample of the graph's features as an (N, D' [+1]) matrix (sparse CSR for sparse input)."""
    sample = sampler.draw(1, generator, token)
    return sample if sample.layout == torch.sparse_csr else sample[0]

"""Tasks: how a kind of data is batched, trained (CE or KD) and evaluated.

``classification`` covers images and token sequences (one label per example); ``language_model``
trains next-token prediction and scores agreement by comparing the probabilities of the correct and
the wrong verb form at the verb position. The trainer (``kdtune.train.trainer``) only talks to a Task.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdtune.registry import Registry
from kdtune.train import metrics
from kdtune.train.data.augment import AUGMENTATIONS
from kdtune.train.data.base import DataInfo, Inputs, Split, take, to_device
from kdtune.train.data.dataset import DataSpec, eval_seed
from kdtune.train.distill import LossSpec, objective

TASKS: Registry[type[Task]] = Registry("task")
FEATURE_SUBSET_SEED = 1234  # the same examples for every trial, so their features can be compared


def feature_index(n: int, k: int) -> torch.Tensor:
    """The fixed subset of ``k`` examples (out of ``n``) whose features every trial saves."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(FEATURE_SUBSET_SEED))
    return perm[: min(k, n)].sort().values


def invariance_copy(split: Split, name: str, data: DataSpec) -> Split:
    """The eval set ``name`` transformed by ``data.invariance`` (an augmentation with its parameters), drawn on
    the CPU from a generator seeded by ``data.corruption_seed`` and ``name``: every model sees the same copy.
    Its parameters hold ``non_identity: true``: each example's transformation is drawn from the augmentation's
    set without the identity (``translate``: a shift uniform on {-m, …, m}² without (0, 0), m = ``max_shift``;
    ``permute``: an order other than the given one; ``translate_points``: a nonzero vector), so no copy is its
    original unchanged and IM is not diluted by untransformed pairs (with the identity among the 9 shifts of
    m = 1, IM was about 8/9 of this). A config from before that (no ``non_identity``) is evaluated as it was."""
    assert data.invariance is not None
    params = dict(data.invariance)
    transform = AUGMENTATIONS.get(params.pop("name"))
    seed = eval_seed(f"invariance:{name}", data.corruption_seed)
    x = to_device(split.x, "cpu")
    x = {k: v.clone() for k, v in x.items()} if isinstance(x, dict) else x.clone()  # never the eval set itself
    moved = transform(x, generator=torch.Generator().manual_seed(seed), **params)
    return Split(to_device(moved, split.y.device), split.y, split.meta)


def batch_inputs(x: Inputs, idx: torch.Tensor | slice) -> Inputs:
    """Rows ``idx`` of the inputs; padded token sequences are cut to the batch's longest one."""
    batch = take(x, idx)
    if isinstance(batch, dict) and "lengths" in batch:
        width = int(batch["lengths"].max())
        batch = {k: (v[:, :width] if v.dim() == 2 else v) for k, v in batch.items()}
    return batch


class Task:
    """Base class: a task turns model outputs into a training loss and evaluation results."""

    cache_teacher: ClassVar[bool] = True  # teacher outputs are per example and can be cached

    def __init__(self, info: DataInfo) -> None:
        self.info = info

    def outputs(self, model: nn.Module, x: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's ``(logits, features)`` on a batch."""
        return model(x)

    @torch.inference_mode()
    def predict(self, model: nn.Module, split: Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example ``(logits, features)`` on a whole split, in eval mode (batched slices)."""
        was_training = model.training
        model.eval()
        outs = [self.example_outputs(model, split, slice(i, i + batch_size)) for i in range(0, len(split), batch_size)]
        model.train(was_training)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def example_outputs(self, model: nn.Module, split: Split, idx: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example logits and features of rows ``idx`` (the thing accuracy and calibration read)."""
        return self.outputs(model, batch_inputs(split.x, idx))

    def train_loss(
        self,
        logits: torch.Tensor,
        split: Split,
        idx: torch.Tensor,
        x: Inputs,
        teacher_logits: torch.Tensor | None,
        loss: LossSpec,
        label_smoothing: float,
    ) -> torch.Tensor:
        raise NotImplementedError

    def teacher_logits(self, teacher: nn.Module, x: Inputs) -> torch.Tensor:
        """What the KD term compares to (eval mode, no gradients)."""
        with torch.inference_mode():
            return self.outputs(teacher, x)[0].clone()

    def validate(self, model: nn.Module, split: Split, batch_size: int) -> dict[str, float]:
        """Per-epoch metrics on the validation split: ``accuracy`` and ``nll`` (what selection reads),
        ``ece`` and D-/A-accuracy where the split has them (what a search may optimise)."""
        logits, _ = self.predict(model, split, batch_size)
        return self.scores(logits, split)

    def evaluate(
        self,
        model: nn.Module,
        split: Split,
        batch_size: int,
        feature_examples: int,
        teacher: nn.Module | None,
        name: str = "",
        data: DataSpec | None = None,
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Metrics of one eval set ``name``, and the arrays saved for later analyses. With ``data.invariance``,
        also ``im``: the invariance metric between the model's probabilities on the set and on its
        :func:`invariance_copy`."""
        logits, feats = self.predict(model, split, batch_size)
        row = self.scores(logits, split)
        if teacher is not None:
            t_logits, _ = self.predict(teacher, split, batch_size)
            row["agreement"], row["kl"] = metrics.agreement(t_logits, logits), metrics.kl(t_logits, logits)
        if data is not None and data.invariance is not None:
            moved, _ = self.predict(model, invariance_copy(split, name, data), batch_size)
            row["im"] = metrics.invariance_metric(F.softmax(logits.double(), -1), F.softmax(moved.double(), -1))
        fidx = feature_index(len(split), feature_examples)
        arrays = {
            "probs": F.softmax(logits.double(), -1).float().cpu().numpy(),
            "labels": split.y.cpu().numpy(),
            "features": feats[fidx.to(feats.device)].float().cpu().numpy(),
            "feature_index": fidx.numpy(),
        }
        return row, arrays

    def scores(self, logits: torch.Tensor, split: Split) -> dict[str, float]:
        """Accuracy, NLL, ECE; D- and A-accuracy where the split knows distances and attractors."""
        row = {
            "n": len(split),
            "accuracy": metrics.accuracy(logits, split.y),
            "nll": metrics.nll(logits, split.y),
            "ece": metrics.ece(F.softmax(logits.double(), -1), split.y),
        }
        for key, name in (("distance", "d_accuracy"), ("attractors", "a_accuracy")):
            groups = split.meta.get(key)
            if groups is not None and bool((groups >= 0).any()):  # -1: unknown for this example
                known = groups >= 0
                row[name] = metrics.macro_accuracy(logits[known], split.y[known], groups[known])
        return row


@TASKS.register("classification")
class Classification(Task):
    """One label per example (images, or token prefixes whose verb number is predicted)."""

    def train_loss(self, logits, split, idx, x, teacher_logits, loss, label_smoothing):
        return objective(loss, logits, split.y[idx], teacher_logits, label_smoothing)


@TASKS.register("language_model")
class LanguageModel(Task):
    """Next-token prediction; agreement is scored at the verb position.

    Token rows are ``<bos> w_1 … w_n <eos>``; the logits at position t predict token t+1. Eval splits
    carry ``meta['verb_index']`` (the verb's position in the row), ``meta['singular']`` and
    ``meta['plural']`` (token ids of the two forms); ``y`` is the subject's number (0 singular, 1 plural).
    Distillation matches the teacher's next-token distribution at every position, so teacher outputs
    are not cached (they would be N × T × V) but computed on each batch.
    """

    cache_teacher = False

    @staticmethod
    def _positions(x: dict[str, torch.Tensor], width: int) -> torch.Tensor:
        """Mask of positions whose next token is a real token (B × width)."""
        return torch.arange(width, device=x["tokens"].device)[None, :] < (x["lengths"][:, None] - 1)

    def train_loss(self, logits, split, idx, x, teacher_logits, loss, label_smoothing):
        tokens = x["tokens"]
        mask = self._positions(x, tokens.shape[1] - 1)
        t_flat = teacher_logits[:, :-1][mask] if teacher_logits is not None else None
        return objective(loss, logits[:, :-1][mask], tokens[:, 1:][mask], t_flat, label_smoothing)

    def example_outputs(self, model: nn.Module, split: Split, idx: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-way logits (log-probabilities of the singular and plural verb forms) and the hidden
        state at the position that predicts the verb."""
        x = batch_inputs(split.x, idx)
        logits, hidden = self.outputs(model, x)
        pos = split.meta["verb_index"][idx] - 1
        rows = torch.arange(len(pos), device=pos.device)
        logp = F.log_softmax(logits[rows, pos].double(), -1)
        two_way = torch.stack([logp[rows, split.meta["singular"][idx]], logp[rows, split.meta["plural"][idx]]], 1)
        return two_way, hidden[rows, pos]

    @torch.inference_mode()
    def token_stats(self, model: nn.Module, split: Split, batch_size: int, teacher: nn.Module | None = None) -> dict[str, float]:
        """Token-level NLL (and perplexity); with a teacher, next-token agreement and KL per token."""
        was_training = model.training
        model.eval()
        nll_sum, agree_sum, kl_sum, count = 0.0, 0.0, 0.0, 0
        for i in range(0, len(split), batch_size):
            x = batch_inputs(split.x, slice(i, i + batch_size))
            logits = self.outputs(model, x)[0][:, :-1]
            mask = self._positions(x, logits.shape[1])
            flat, target = logits[mask].double(), x["tokens"][:, 1:][mask]
            nll_sum += F.cross_entropy(flat, target, reduction="sum").item()
            count += int(mask.sum())
            if teacher is not None:
                teacher.eval()
                t_flat = self.outputs(teacher, x)[0][:, :-1][mask].double()
                agree_sum += (t_flat.argmax(-1) == flat.argmax(-1)).double().sum().item()
                log_t, log_s = F.log_softmax(t_flat, -1), F.log_softmax(flat, -1)
                kl_sum += (log_t.exp() * (log_t - log_s)).sum().item()
        model.train(was_training)
        out = {"token_nll": nll_sum / count, "perplexity": float(np.exp(nll_sum / count))}
        if teacher is not None:
            out |= {"agreement": agree_sum / count, "kl": kl_sum / count}
        return out

    def validate(self, model: nn.Module, split: Split, batch_size: int) -> dict[str, float]:
        """Selection metrics: agreement accuracy at the verb and token-level NLL."""
        stats = self.token_stats(model, split, batch_size)
        out = {"nll": stats["token_nll"], "token_nll": stats["token_nll"], "perplexity": stats["perplexity"]}
        if "verb_index" in split.meta:
            two_way, _ = self.predict(model, split, batch_size)
            out["accuracy"] = metrics.accuracy(two_way, split.y)
        return out

    def evaluate(self, model, split, batch_size, feature_examples, teacher, name="", data=None):
        row, arrays = super().evaluate(model, split, batch_size, feature_examples, None, name, data)
        row |= self.token_stats(model, split, batch_size, teacher)
        return row, arrays


def task_for(info: DataInfo) -> Task:
    """The task a data set's ``info.task`` names."""
    return TASKS.get(info.task)(info)

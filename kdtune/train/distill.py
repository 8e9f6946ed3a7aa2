"""Distillation losses (a registry, one small function per method) and the trial objective.

Weights are named for what they weigh: ``w_hard`` multiplies the cross-entropy with the labels, ``w_soft`` the
distillation term. Pure distillation, as in Abnar et al., is ``w_hard=0, w_soft=1``.

A student may switch between the labels and its teacher during training (student–teacher deviations paper, section 3.2):
``LossSpec.start`` and ``LossSpec.stop`` bound the epochs that distil, :func:`loss_for_epoch` gives the loss of each
epoch. Model selection of a switched student stays inside the epochs its condition holds in: :func:`selection_epochs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdtune.registry import Registry

KDLoss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
KD_LOSSES: Registry[KDLoss] = Registry("distillation loss")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. (2015): ``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))``, averaged over the batch.

    The τ² factor keeps the gradient scale independent of τ. Logits are N×C (flatten sequences first).
    """
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
    # written out rather than F.kl_div(..., "batchmean", log_target=True), which has no vmap batching
    # rule (seed-batched training would run it seed by seed)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean() * (t * t)


KD_LOSSES.register("hinton")(kd_loss)


@KD_LOSSES.register("soft_ce")
def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``τ² · H(softmax(t/τ), softmax(s/τ))`` (the paper's eq. 2): the Hinton loss plus the teacher's
    entropy, which has no gradient with respect to the student."""
    t = temperature
    p_t = F.softmax(teacher_logits / t, dim=-1)
    return -(p_t * F.log_softmax(student_logits / t, dim=-1)).sum(-1).mean() * (t * t)


@dataclass(frozen=True)
class LossSpec:
    """A trial's objective: cross-entropy from data, or a weighted sum with a distillation term."""

    kind: str = "ce"  # "ce" (trained from data) or a KD_LOSSES name
    temperature: float | None = None
    w_hard: float = 1.0
    w_soft: float = 0.0
    start: float | int = 0.0  # first distilled epoch: a fraction in [0, 1) of the epochs, or an epoch number >= 1
    stop: float | int | None = None  # first epoch back on the labels (same forms), or None: distil to the end

    @property
    def distills(self) -> bool:
        """Whether this objective reads a teacher."""
        return self.kind != "ce"


LABELS_ONLY = LossSpec("ce", w_hard=1.0, w_soft=0.0)  # what a switched student trains on outside its window


def switch_epoch(value: float | int, epochs: int) -> int:
    """The 1-based epoch a switch point names: a fraction ``v`` in [0, 1) of ``epochs`` is epoch
    ``round(v · epochs) + 1``, halves rounded up (0: the first epoch), an integer ``v >= 1`` is epoch ``v`` itself."""
    if isinstance(value, float) and 0 <= value < 1:
        return math.floor(value * epochs + 0.5) + 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, int) and value == 0:
        return 1
    raise ValueError(f"a switch point is a fraction in [0, 1) or an epoch number >= 1, got {value!r}")


def distill_epochs(spec: LossSpec, epochs: int) -> range:
    """The 1-based epochs of a training of ``epochs`` epochs that use ``spec``'s distillation loss (all of
    them for an objective without a switch, none for one that reads no teacher)."""
    if not spec.distills:
        return range(1, 1)
    first = switch_epoch(spec.start, epochs)
    end = epochs + 1 if spec.stop is None else switch_epoch(spec.stop, epochs)
    return range(min(first, epochs + 1), min(max(end, first), epochs + 1))


def objective_starts(spec: LossSpec, epoch: int, epochs: int) -> bool:
    """Whether 1-based ``epoch`` is the first of an objective: the first epoch, or a switch between the labels
    and the teacher (what a divergence check measures the loss against: the two differ in scale)."""
    return epoch == 1 or loss_for_epoch(spec, epoch, epochs) != loss_for_epoch(spec, epoch - 1, epochs)


def loss_for_epoch(spec: LossSpec, epoch: int, epochs: int) -> LossSpec:
    """The loss of 1-based ``epoch`` of ``epochs``: ``spec`` itself in the epochs it distils (from
    ``start`` on, before ``stop``), the labels-only cross-entropy :data:`LABELS_ONLY` outside them."""
    if not spec.distills or (spec.start == 0 and spec.stop is None):
        return spec
    return spec if epoch in distill_epochs(spec, epochs) else LABELS_ONLY


def switches(spec: LossSpec, epochs: int) -> bool:
    """Whether a training of ``epochs`` epochs under ``spec`` changes objective after its first epoch (a switch
    between the labels and the teacher that falls inside the training)."""
    return any(objective_starts(spec, e, epochs) for e in range(2, epochs + 1))


def selection_epochs(spec: LossSpec, epochs: int) -> range:
    """The 1-based epochs a switched student's model selection may keep: from its last switch on, to the end (every
    epoch without a switch inside the training). The kept epoch must follow every switch, or the student studied is not
    the one that went through its whole schedule: before ``start`` it never read its teacher (every later start point
    would keep the same best labels-only epoch); before ``stop`` it is a distilled student stopped early, and the reverse
    control would measure early stopping, not whether the gain survives the return to the labels."""
    last = max((e for e in range(1, epochs + 1) if objective_starts(spec, e, epochs)), default=1)
    return range(last, epochs + 1)


def objective(
    spec: LossSpec,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The training loss of one batch: ``w_hard · CE(labels) + w_soft · KD(teacher)``."""
    loss = student_logits.new_zeros(())
    if spec.w_hard:
        loss = loss + spec.w_hard * F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if spec.distills and spec.w_soft:
        assert teacher_logits is not None and spec.temperature is not None
        loss = loss + spec.w_soft * KD_LOSSES.get(spec.kind)(student_logits, teacher_logits, spec.temperature)
    return loss

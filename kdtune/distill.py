"""Distillation losses (a registry, one small function per method) and the trial objective.

Weights are named for what they weigh: ``w_hard`` multiplies the cross-entropy with the labels,
``w_soft`` the distillation term. Pure distillation, as in Abnar et al., is ``w_hard=0, w_soft=1``.
"""

from __future__ import annotations

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
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


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

    @property
    def distills(self) -> bool:
        """Whether this objective reads a teacher."""
        return self.kind != "ce"


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

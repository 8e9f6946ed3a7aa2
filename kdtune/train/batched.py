"""Seed-batched training: the seeds of a trial group (configs equal but for the seeds and teacher) trained as one
vectorised model.

Each seed's :class:`~kdtune.train.trainer.Trainer` keeps what it keeps alone (initialisation, data order, augmentation,
dropout keys, history, selection, ``finish``). A :class:`SeedBatch` stacks the models' parameters and buffers
(``torch.func.stack_module_state``) and trains an epoch of all at once: one vmapped forward and loss, one backward of the
summed per-seed losses, per-seed clipping, ONE elementwise optimizer over the stacked parameters (so each seed's
optimizer state is what its own would hold); BatchNorm statistics are per seed. After each epoch every seed's state
goes back into its trainer, which validates and selects as alone: a seed's result does not depend on its group, up to
float rounding (the tests hold parameters to 1e-4 after 2 epochs).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdtune.train.distill import loss_for_epoch, objective_starts
from kdtune.train.models.layers import Dropout, dropout_keys
from kdtune.train.optim import OPTIMIZERS
from kdtune.train.tasks import Task
from kdtune.train.trainer import InjectedFault, Trainer

logger = logging.getLogger(__name__)

# optimizers whose update of an element reads only that element's gradient and state: one of them over
# stacked parameters is exactly k separate ones (their shared state is the step count)
ELEMENTWISE_OPTIMIZERS = frozenset({"adam", "adamw", "sgd"})
SHARED_STATE = frozenset({"step"})  # optimizer state equal for every seed (kept once, not stacked)
_said: set[str] = set()


def say_once(message: str) -> None:
    """Log ``message`` once per process (why a group trains one seed at a time)."""
    if message not in _said:
        _said.add(message)
        logger.warning(message)


def batch_problem(trainers: Sequence[Trainer]) -> str | None:
    """Why these trainers cannot train as one vmapped model (one line), or None if they can."""
    if len(trainers) < 2:
        return "fewer than 2 seeds"
    first = trainers[0].config
    if any(t.config.seedless() != first.seedless() for t in trainers[1:]):
        return "the trials differ in more than their seeds"
    tr = first.train
    if tr.optimizer not in ELEMENTWISE_OPTIMIZERS:
        return f"optimizer {tr.optimizer!r} is not known to be elementwise (batched: {', '.join(sorted(ELEMENTWISE_OPTIMIZERS))})"
    if not isinstance(trainers[0].data.train.x, torch.Tensor):
        return f"{first.data.name} inputs are token sequences (batches of different widths per seed)"
    if type(trainers[0].task).outputs is not Task.outputs:
        return f"task {type(trainers[0].task).__name__} computes its outputs its own way"
    model = trainers[0].model
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout) and not isinstance(module, Dropout) and module.p > 0:
            return f"model {first.arch!r} has an unkeyed dropout ({name or type(module).__name__})"
        if isinstance(module, nn.RNNBase) and module.dropout > 0:
            return f"model {first.arch!r} has an LSTM/RNN with its own dropout ({name})"
    return _probe(trainers[0])


def batchable(trainers: Sequence[Trainer]) -> bool:
    """Whether two or more trainers can train as one vmapped model; if they cannot, why is logged once."""
    if len(trainers) < 2:
        return False
    problem = batch_problem(trainers)
    if problem is not None:
        say_once(f"seeds of {trainers[0].config.arch} train one at a time: {problem}")
    return problem is None


def _probe(trainer: Trainer) -> str | None:
    """Run a vmapped forward and backward of two copies of the model on two examples (on copies of its
    state: nothing of the trainer changes); the error's first line if that fails."""
    model = trainer.model
    params, buffers = stack_module_state([model, model])
    buffers = {k: v.clone() for k, v in buffers.items()}
    base = copy.deepcopy(model).to("meta").train()
    x = trainer.data.train.x[:2]
    keys = torch.zeros(2, dtype=torch.int64, device=x.device)

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], key: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with dropout_keys(key, 0):
            return functional_call(base, (p, b), (x,))[0].sum()

    try:
        vmap(one, randomness="error")(params, buffers, keys, torch.stack([x, x])).sum().backward()
    except Exception as e:  # any failure of vmap means: train these seeds one at a time
        lines = str(e).strip().splitlines()
        return f"vmap of model {trainer.config.arch!r} failed ({type(e).__name__}: {lines[0] if lines else ''})"
    return None


class SeedBatch:
    """The stacked state of k trainers (parameters, buffers, optimizer, schedule) and their joint epoch."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        self.trainers = list(trainers)
        t0 = self.trainers[0]
        self.config, self.task, self.data, self.device = t0.config, t0.task, t0.data, t0.device
        self.base = copy.deepcopy(t0.model).to("meta")
        params, buffers = stack_module_state([t.model for t in self.trainers])
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.clone() for k, v in buffers.items()}
        self.names = list(self.params)
        tr = self.config.train
        # built as the trainers build theirs (the registry, from the trial's settings), not from the
        # trainer's ``optimizer.defaults``: those hold keys some constructors do not take (AdamW's
        # ``decoupled_weight_decay``)
        self.optimizer = OPTIMIZERS.get(tr.optimizer)(list(self.params.values()), lr=tr.lr, weight_decay=tr.weight_decay)
        self._import_optimizer_state()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, t0.scheduler.lr_lambdas[0])
        self.scheduler.load_state_dict(t0.scheduler.state_dict())
        self.optimizer.param_groups[0]["lr"] = t0.optimizer.param_groups[0]["lr"]
        self.keys = torch.stack([t.dropout_key for t in self.trainers])
        cached = [t.cached_logits for t in self.trainers]
        self.cached = torch.stack(cached) if all(c is not None for c in cached) else None  # type: ignore[misc]
        self.teachers = [t.teacher for t in self.trainers] if self.cached is None and t0.teacher is not None else None
        teacher_dim = None if self.cached is None and self.teachers is None else 0
        self.loss_fn = vmap(self._loss, in_dims=(0, 0, 0, 0, 0, teacher_dim, None), randomness="error")
        self.clip = tr.grad_clip
        self.epoch_loss = self.config.loss

    def _loss(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        key: torch.Tensor,
        x: torch.Tensor,
        idx: torch.Tensor,
        t_logits: torch.Tensor | None,
        step: int,
    ) -> torch.Tensor:
        with dropout_keys(key, step):
            logits, _ = functional_call(self.base, (params, buffers), (x,))
        return self.task.train_loss(logits, self.data.train, idx, x, t_logits, self.epoch_loss, self.config.train.label_smoothing)

    def _import_optimizer_state(self) -> None:
        """Stack the trainers' optimizer states (after a regrouping or a lockstep start mid-run)."""
        per_trainer = [list(t.model.parameters()) for t in self.trainers]
        for n, name in enumerate(self.names):
            states = [t.optimizer.state.get(ps[n], {}) for t, ps in zip(self.trainers, per_trainer, strict=True)]
            if not states[0]:
                continue
            self.optimizer.state[self.params[name]] = {
                k: (v.clone() if k in SHARED_STATE else torch.stack([s[k] for s in states])) for k, v in states[0].items()
            }

    def export(self, j: int) -> None:
        """Copy seed ``j``'s parameters, buffers, optimizer and schedule state into its trainer."""
        t = self.trainers[j]
        with torch.no_grad():
            for name, p in t.model.named_parameters():
                p.copy_(self.params[name][j])
            for name, b in t.model.named_buffers():
                b.copy_(self.buffers[name][j])
        for name, p in zip(self.names, t.model.parameters(), strict=True):
            state = self.optimizer.state.get(self.params[name])
            if state:
                t.optimizer.state[p] = {k: (v.clone() if k in SHARED_STATE else v[j].clone()) for k, v in state.items()}
        t.scheduler.load_state_dict(self.scheduler.state_dict())
        t.optimizer.param_groups[0]["lr"] = self.optimizer.param_groups[0]["lr"]

    def _clip(self) -> None:
        """Per-seed gradient-norm clipping, as ``nn.utils.clip_grad_norm_`` does for one model."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1).norm(dim=1)  # k
        coef = (self.clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    def train_epoch(self) -> list[dict[str, float] | BaseException]:
        """Train one epoch of every seed; each trainer then validates it. Returns per seed its history
        row, or the exception that failed it (an injected fault, divergence)."""
        trainers, data, k = self.trainers, self.data, len(self.trainers)
        starts = [t._begin_epoch() for t in trainers]
        failed: dict[int, BaseException] = {}
        t0 = trainers[0]
        epoch, steps = t0.epoch, t0.steps
        self.epoch_loss = loss_for_epoch(self.config.loss, epoch, self.config.train.epochs)  # the distillation switch
        self.base.train()
        loss_sum = torch.zeros(k, device=self.device)
        rows = torch.arange(k, device=self.device)[:, None]
        for i in range(steps):
            idx = torch.stack([t._batch_index(perm, i) for t, (perm, _) in zip(trainers, starts, strict=True)])
            x = data.train.x[idx]
            if t0.augment is not None:
                fn, kw = t0.augment
                x = torch.stack([fn(x[j], generator=t.gen, **kw) for j, t in enumerate(trainers)])
            t_logits = None
            if self.cached is not None:
                t_logits = self.cached[rows, idx]
            elif self.teachers is not None:
                t_logits = torch.stack([self.task.teacher_logits(m, x[j]) for j, m in enumerate(self.teachers)])
            losses = self.loss_fn(self.params, self.buffers, self.keys, x, idx, t_logits, t0._step(i))
            if i == t0.fault_step:
                losses = self._faults(losses, starts, failed)
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            if self.clip:
                self._clip()
            self.optimizer.step()
            self.scheduler.step()
            if i == 0 and objective_starts(self.config.loss, epoch, self.config.train.epochs):  # as Trainer does
                for t, value in zip(trainers, losses.detach().tolist(), strict=True):
                    t.start_loss = value
            loss_sum += losses.detach() * idx.shape[1]
        out: list[dict[str, float] | BaseException] = []
        for j, t in enumerate(trainers):
            if j in failed:
                out.append(failed[j])
                continue
            self.export(j)
            try:
                row = t._end_epoch(loss_sum[j])
                t._snapshot()
            except Exception as e:  # divergence: this seed fails, the others go on
                out.append(e)
            else:
                out.append(row)
        return out

    def _faults(
        self, losses: torch.Tensor, starts: list[tuple[torch.Tensor, str | None]], failed: dict[int, BaseException]
    ) -> torch.Tensor:
        """Apply the faults ``KDTUNE_FAULT`` injects into this epoch, seed by seed (``nan`` poisons that seed's loss)."""
        scale = None
        for j, (t, (_, fault)) in enumerate(zip(self.trainers, starts, strict=True)):
            if not fault:
                continue
            try:
                t._inject(fault, t.epoch)
            except InjectedFault as e:
                failed[j] = e
                continue
            scale = torch.ones_like(losses) if scale is None else scale
            scale[j] = float("nan")
        return losses if scale is None else losses * scale


def train_together(
    trainers: Sequence[Trainer],
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    finish: Callable[[int], dict[str, Any]] | None = None,
) -> list[dict[str, Any] | BaseException]:
    """Train ``trainers`` (a group's seeds, :func:`batch_problem` None) as one vmapped model, epoch by epoch,
    and finish each; returns per trainer its ``finish`` result or the exception that failed it. A seed that
    fails leaves the batch (the others are regrouped from their trainers' state); the last one left trains alone.
    ``on_epoch(j, row)`` gets each epoch's row of trainer j; ``finish(j)`` finishes trainer j (default ``finish()``)."""
    results: dict[int, dict[str, Any] | BaseException] = {}
    active = list(range(len(trainers)))
    batch = SeedBatch([trainers[j] for j in active]) if len(active) >= 2 else None
    while active and not trainers[active[0]].done:
        if batch is not None:
            rows = batch.train_epoch()
        else:
            rows = []
            for j in active:
                try:
                    rows.append(trainers[j].train_epoch())
                except Exception as e:  # this seed fails; the others go on
                    rows.append(e)
        for j, row in zip(list(active), rows, strict=True):
            if isinstance(row, BaseException):
                results[j] = row
                active.remove(j)
            elif on_epoch is not None:
                on_epoch(j, row)
        if batch is not None and len(active) != len(batch.trainers):
            batch = SeedBatch([trainers[j] for j in active]) if len(active) >= 2 else None
    for j in active:
        try:
            results[j] = finish(j) if finish is not None else trainers[j].finish()
        except Exception as e:
            results[j] = e
    return [results[j] for j in range(len(trainers))]

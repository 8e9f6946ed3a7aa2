"""Train one trial: data tensors on the device → model → loss (CE or KD) → metrics → run folder.

No per-example Python: an epoch is a device-side permutation sliced into batches; teachers'
training-set logits are computed once and cached in the teacher's folder (unless the student's
inputs are randomly augmented, when the teacher runs in eval mode on each augmented batch).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune.data import DataBundle, DataInfo, data_fingerprint, load_data
from kdtune.data.augment import AUGMENTATIONS
from kdtune.errors import KdtuneError
from kdtune.models import build_model
from kdtune.optim import OPTIMIZERS, SCHEDULES
from kdtune.plan import TrialConfig
from kdtune.rundir import (
    MODEL,
    TrialWriter,
    check_trial,
    is_finished,
    load_state,
    read_json,
    save_array_atomic,
    sha256_file,
    trial_dir,
)
from kdtune.tasks import Task, batch_inputs, task_for


def resolve_device(device: str) -> torch.device:
    """``auto`` → the GPU Ray assigned to this trial if any, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise KdtuneError("execution.device is cuda but no CUDA device is visible to this trial")
    return torch.device(device)


def trial_seed(config: TrialConfig) -> int:
    """The seed of a trial's initialisation, dropout and data order. Students draw theirs apart from
    teachers', so student seed s distilled from teacher seed s of the same model does not start as
    an exact copy of its teacher."""
    if not config.loss.distills:
        return config.seed
    return zlib.crc32(f"student:{config.seed}".encode())


DIVERGENCE_FACTOR = 10.0  # an epoch's training loss this many times its first batch's counts as diverged


class DivergedError(FloatingPointError):
    """Training diverged: a non-finite loss or parameter, or a loss far above its starting value."""


def check_divergence(config: TrialConfig, epoch: int, train_loss: float, start_loss: float, model: nn.Module) -> None:
    """Raise :class:`DivergedError` with its reason if the epoch just trained diverged."""
    where = f"trial {config.id}, epoch {epoch}"
    if not math.isfinite(train_loss):
        raise DivergedError(f"{where}: training loss became {train_loss}")
    if start_loss > 0 and train_loss > DIVERGENCE_FACTOR * start_loss:
        raise DivergedError(
            f"{where}: training loss {train_loss:.3g} is over {DIVERGENCE_FACTOR:g}× its starting value {start_loss:.3g}"
        )
    bad = next((n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())), None)
    if bad is not None:
        raise DivergedError(f"{where}: parameter {bad} is not finite")


def load_trained_model(run_dir: Path, trial_id: str, info: DataInfo, device: torch.device) -> nn.Module:
    """Rebuild a finished trial's model from its folder, in eval mode (its checkpoint's checksum checked)."""
    problem = check_trial(run_dir, trial_id, ("config.json", MODEL))
    if problem:
        raise KdtuneError(f"teacher {trial_id}: {problem}; re-run the sweep to train it again")
    cfg = TrialConfig.from_dict(read_json(trial_dir(run_dir, trial_id) / "config.json")["config"])
    model = build_model(cfg.arch, info, cfg.train.dropout, dict(cfg.params)).to(device)
    model.load_state_dict(load_state(run_dir, trial_id, device))
    return model.eval()


def teacher_train_logits(
    run_dir: Path,
    teacher_id: str,
    data: DataBundle,
    task: Task,
    config: TrialConfig,
    teacher: nn.Module,
    eval_batch_size: int = 512,
) -> torch.Tensor:
    """The teacher's logits on the training split: read from its cache, or computed once and cached.
    The cache is named by the fingerprint of the data it was computed on and read only if its checksum
    (recorded in the teacher's checksums.json, or in a ``.sha256`` file beside it) matches."""
    name = f"train_logits-{config.data_fingerprint}.npy"
    path = trial_dir(run_dir, teacher_id) / name
    sidecar = path.with_name(name + ".sha256")
    if path.is_file():
        recorded = sidecar.read_text().strip() if sidecar.is_file() else None
        valid = sha256_file(path) == recorded if recorded else check_trial(run_dir, teacher_id, (name,)) is None
        if valid:
            logits = np.load(path, allow_pickle=False)
            if logits.shape[0] == len(data.train):
                return torch.from_numpy(logits).to(data.train.y.device)
    logits = task.predict(teacher, data.train, eval_batch_size)[0].float()
    save_array_atomic(path, logits.cpu().numpy())
    sidecar.write_text(sha256_file(path) + "\n")
    return logits


def _schedule(config: TrialConfig, steps_per_epoch: int) -> Callable[[int], float]:
    fn, params, epochs = SCHEDULES.get(config.train.schedule.name), dict(config.train.schedule.params), config.train.epochs
    return lambda step: fn(step / steps_per_epoch, epochs, **params)


def selection_key(select: str, row: dict[str, float]) -> tuple[float, float]:
    """What model selection maximises: validation accuracy, ties broken by lower validation NLL
    (``val_accuracy``); or lower validation NLL, ties broken by higher accuracy (``val_nll``). Among
    epochs equal in both, the earliest is kept."""
    acc, nll = row.get("val_accuracy", float("nan")), row["val_nll"]
    acc = acc if math.isfinite(acc) else -math.inf
    nll = nll if math.isfinite(nll) else math.inf
    return (acc, -nll) if select == "val_accuracy" else (-nll, acc)


def train_trial(
    config: TrialConfig,
    run_dir: Path,
    data_root: str | None,
    device: torch.device,
    export_train_logits: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    eval_batch_size: int = 512,
) -> dict[str, Any]:
    """Train one trial and publish its folder; returns its ``metrics.json`` content."""
    start = time.perf_counter()
    tr = config.train
    data = load_data(config.data, data_root, str(device))
    fingerprint = data_fingerprint(config.data, data_root)
    if config.data_fingerprint and fingerprint != config.data_fingerprint:
        raise KdtuneError(
            f"trial {config.id}: the data loaded here (fingerprint {fingerprint}) differs from the data it was planned on "
            f"({config.data_fingerprint}); is the data folder the same on every node?"
        )
    task = task_for(data.info)
    seed = trial_seed(config)
    torch.manual_seed(seed)  # initialisation and dropout
    gen = torch.Generator(device=device).manual_seed(seed)  # data order and augmentation
    model = build_model(config.arch, data.info, tr.dropout, dict(config.params)).to(device)

    cached_logits: torch.Tensor | None = None
    teacher: nn.Module | None = None
    if config.loss.distills:
        tid = config.teacher_id
        if tid is None or not is_finished(run_dir, tid):
            raise KdtuneError(f"teacher {tid} of trial {config.id} has not finished; run its stage first")
        teacher = load_trained_model(run_dir, tid, data.info, device)
        if task.cache_teacher and tr.augment is None:
            cached_logits = teacher_train_logits(run_dir, tid, data, task, config, teacher, eval_batch_size)

    optimizer = OPTIMIZERS.get(tr.optimizer)(model.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
    n = len(data.train)
    steps = max(1, n // tr.batch_size if n % tr.batch_size == 1 else math.ceil(n / tr.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))
    augment = (AUGMENTATIONS.get(tr.augment.name), dict(tr.augment.params)) if tr.augment else None

    history: list[dict[str, float]] = []
    best_value: tuple[float, float] | None = None
    start_loss = 0.0
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = tr.epochs
    for epoch in range(1, tr.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps):
            idx = perm[i * tr.batch_size : n if i == steps - 1 else (i + 1) * tr.batch_size]  # no batch of one
            x = batch_inputs(data.train.x, idx)
            if augment is not None:
                x = augment[0](x, generator=gen, **augment[1])
            t_logits = None
            if cached_logits is not None:
                t_logits = cached_logits[idx]
            elif teacher is not None:
                t_logits = task.teacher_logits(teacher, x)
            logits, _ = task.outputs(model, x)
            loss = task.train_loss(logits, data.train, idx, x, t_logits, config.loss, tr.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tr.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
            optimizer.step()
            scheduler.step()
            if epoch == 1 and i == 0:
                start_loss = float(loss.detach())
            loss_sum += loss.detach() * len(idx)
        val = task.validate(model, data.val, eval_batch_size)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum.item() / n,
            "val_accuracy": val.get("accuracy", float("nan")),
            "val_nll": val["nll"],
            "lr": optimizer.param_groups[0]["lr"],
        }
        check_divergence(config, epoch, row["train_loss"], start_loss, model)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        key = selection_key(tr.select, row) if tr.select != "last" else None
        if key is not None and (best_value is None or key > best_value):
            best_value, best_epoch = key, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)

    writer = TrialWriter(run_dir, config.id)
    try:
        evals: dict[str, dict[str, float]] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, split in data.evals.items():
            evals[name], saved = task.evaluate(model, split, eval_batch_size, config.outputs.feature_examples, teacher)
            arrays |= {f"{key}__{name}": value for key, value in saved.items()}
        writer.save_model(model.state_dict())
        writer.save_outputs(arrays)
        if export_train_logits and task.cache_teacher:
            train_logits = task.predict(model, data.train, eval_batch_size)[0].float().cpu().numpy()
            np.save(writer.path(f"train_logits-{config.data_fingerprint}.npy"), train_logits)
        result = {
            "status": "ok",
            "id": config.id,
            "seed": config.seed,
            "teacher_id": config.teacher_id,
            "best_epoch": best_epoch,
            "history": history,
            "eval": evals,
            "seconds": time.perf_counter() - start,
            "device": str(device),
            "torch": torch.__version__,
            "num_parameters": sum(p.numel() for p in model.parameters()),
        }
        writer.commit({"id": config.id, "config": config.to_dict()}, result)
    except BaseException:
        writer.abort()
        raise
    return result


def summarize(results: list[dict[str, Any]]) -> dict[str, float]:
    """What a group reports to Ray Tune: validation metrics averaged over its seeds."""
    out: dict[str, float] = {"trials": float(len(results))}
    for key in ("accuracy", "nll", "ece"):
        vals = [r["eval"]["val"][key] for r in results if "val" in r.get("eval", {})]
        if vals:
            out[f"val_{key}"] = float(np.mean(vals))
    return out


def config_summary(config: TrialConfig) -> dict[str, Any]:
    """A flat view of the settings reports group by (used by results tables)."""
    tr = asdict(config.train)
    return {
        "arch": config.arch,
        "temperature": config.loss.temperature if config.loss.distills else None,
        "w_hard": config.loss.w_hard if config.loss.distills else None,
        "w_soft": config.loss.w_soft if config.loss.distills else None,
        "kd_loss": config.loss.kind if config.loss.distills else None,
        **{
            k: tr[k]
            for k in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "dropout", "label_smoothing", "grad_clip")
        },
        "schedule": config.train.schedule.name,
        "augment": config.train.augment.name if config.train.augment else None,
    }

"""Train one trial: data tensors on the device → model → loss (CE or KD) → metrics → run folder.

No per-example Python: an epoch is a device-side permutation sliced into batches; teachers' training-set logits are
computed once and cached in the teacher's folder (with randomly augmented student inputs the teacher runs in eval mode
on each batch).

For developers' tests, ``KDTUNE_FAULT`` injects faults (comma-separated ``KIND:PREFIX:EPOCH[:once]``): in epoch EPOCH
(from 1) of every trial whose id starts with PREFIX, after its first batch, ``raise`` raises :class:`InjectedFault`,
``nan`` makes the loss nan (the divergence check fails the trial), ``kill`` sends SIGKILL to the training process;
``once``: only the first attempt (a file in ``RUN/faults/`` records it). ``view:FOLDER`` makes the shared-storage check
look for every path under FOLDER on the nodes whose environment has it (see :mod:`kdtune.run.execute`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune import labels
from kdtune.errors import KdtuneError
from kdtune.labels import SELECT_FROM, STUDENT_STREAMS
from kdtune.rundir import (
    MODEL,
    TrialWriter,
    check_trial,
    is_finished,
    read_json,
    save_array_atomic,
    sha256_file,
    trial_dir,
)
from kdtune.train.config import TrialConfig
from kdtune.train.data import DataBundle, DataInfo, data_fingerprint, load_data
from kdtune.train.data.augment import AUGMENTATIONS
from kdtune.train.data.base import Split, take
from kdtune.train.distill import loss_for_epoch, objective_starts, selection_epochs
from kdtune.train.models import build_model
from kdtune.train.models.layers import dropout_keys
from kdtune.train.optim import OPTIMIZERS, SCHEDULES
from kdtune.train.tasks import Task, batch_inputs, feature_index, task_for

TENSORBOARD = "tensorboard"  # RUN/tensorboard/<group name>/<trial id>/: per-epoch curves (execution.tensorboard)
PATHS = "paths.npz"  # training-path features: path_features__e<epoch>, epochs, feature_index, eval_set


FAULT_ENV = "KDTUNE_FAULT"
FAULT_KINDS = ("raise", "nan", "kill", "hang")


class InjectedFault(RuntimeError):
    """The failure ``KDTUNE_FAULT=raise:…`` asks for."""


def injected_fault(run_dir: Path, trial_id: str, epoch: int) -> str | None:
    """The fault ``KDTUNE_FAULT`` asks for in this trial's epoch (``raise``, ``nan`` or ``kill``), or None.
    A ``once`` fault is claimed by creating ``RUN/faults/<kind>-<id>-<epoch>``: only its first attempt gets it."""
    for item in filter(None, (s.strip() for s in os.environ.get(FAULT_ENV, "").split(","))):
        kind, _, rest = item.partition(":")
        if kind not in FAULT_KINDS:
            continue  # view:…, read by the storage check
        prefix, _, rest = rest.partition(":")
        at, _, flag = rest.partition(":")
        if not at.isdigit() or flag not in ("", "once"):
            raise ValueError(f"{FAULT_ENV}: {item!r} is not KIND:PREFIX:EPOCH[:once]")
        if not trial_id.startswith(prefix) or int(at) != epoch:
            continue
        if flag == "once":
            marker = Path(run_dir) / "faults" / f"{kind}-{trial_id}-{epoch}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
        return kind
    return None


def resolve_device(device: str) -> torch.device:
    """``auto`` → the GPU Ray assigned to this trial if any, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise KdtuneError("execution.device is cuda but no CUDA device is visible to this trial")
    return torch.device(device)


def stream_seeds(config: TrialConfig) -> dict[str, int]:
    """The seeds of a trial's random streams (:func:`kdtune.labels.stream_seeds`), what :class:`Trainer` draws from.
    Two trials with equal ones are paired unit by unit (same start, same batches); equal ``init_seed`` alone: the same
    initial weights (same model)."""
    shared = getattr(config, "student_streams", None) == STUDENT_STREAMS[1]  # (analyses' tests pass bare namespaces)
    return labels.stream_seeds(config.seed, getattr(config, "data_seed", None), config.loss.distills, shared)


def trial_seed(config: TrialConfig) -> int:
    """The seed of a trial's initialisation stream."""
    return stream_seeds(config)["init_seed"]


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


def load_state(run_dir: Path, trial_id: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A finished trial's weights (``torch.load(weights_only=True)``)."""
    path = trial_dir(run_dir, trial_id) / MODEL
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise KdtuneError(f"{path}: cannot load checkpoint ({e})") from None


def load_trained_model(run_dir: Path, trial_id: str, info: DataInfo, device: torch.device) -> nn.Module:
    """Rebuild a finished trial's model from its folder, in eval mode (its checkpoint's checksum checked)."""
    problem = check_trial(run_dir, trial_id, ("config.json", MODEL))
    if problem:
        raise KdtuneError(f"trial {trial_id}: {problem}; re-run the sweep to train it again")
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


def select_window(config: TrialConfig) -> range:
    """The 1-based epochs model selection chooses among: every epoch, or with ``train.select_from`` last_switch
    (a student whose loss switches between the labels and its teacher) those from its last switch on
    (:func:`kdtune.train.distill.selection_epochs`: for ``start``, the distilled epochs; for ``stop``, the epochs back
    on the labels). Recorded in ``metrics.json`` as ``select_window: [first, last]``."""
    epochs = config.train.epochs
    if config.train.select_from == SELECT_FROM[1]:  # last_switch
        return selection_epochs(config.loss, epochs)
    return range(1, epochs + 1)


class Trainer:
    """One trial's training, advanced one epoch at a time: data on the device, model, teacher (and its
    cached logits), optimizer, schedule, selection on validation. Each trainer keeps its own random
    state, so trials trained in lockstep (the seeds of a search trial) give exactly what they give alone."""

    def __init__(
        self,
        config: TrialConfig,
        run_dir: Path,
        data_root: str | None,
        device: torch.device,
        eval_batch_size: int = 512,
    ) -> None:
        self.start = time.perf_counter()
        self.config, self.run_dir, self.device, self.eval_batch_size = config, Path(run_dir), device, eval_batch_size
        tr = config.train
        self.data = data = load_data(config.data, data_root, str(device))
        fingerprint = data_fingerprint(config.data, data_root)
        if config.data_fingerprint and fingerprint != config.data_fingerprint:
            raise KdtuneError(
                f"trial {config.id}: the data loaded here (fingerprint {fingerprint}) differs from the data it was planned on "
                f"({config.data_fingerprint}); is the data folder the same on every node?"
            )
        self.task = task = task_for(data.info)
        seeds = stream_seeds(config)
        with self._fresh_rng(seeds["init_seed"]):  # the initialisation stream
            self.model = build_model(config.arch, data.info, tr.dropout, dict(config.params)).to(device)
        if seeds["data_seed"] != seeds["init_seed"]:
            # the global random state training goes on from (what a model's own, unkeyed dropout draws from, e.g.
            # an LSTM's) follows the data seed: as it is after initialising a model with that seed
            with self._fresh_rng(seeds["data_seed"]):
                build_model(config.arch, data.info, tr.dropout, dict(config.params))
        # the data stream: data order and augmentation (a generator), keyed dropout masks (a key)
        self.gen = torch.Generator(device=device).manual_seed(seeds["data_seed"])
        self.dropout_key = torch.tensor(seeds["data_seed"] & 0xFFFFFFFF, dtype=torch.int64, device=device)

        self.cached_logits: torch.Tensor | None = None
        self.teacher: nn.Module | None = None
        if config.loss.distills:
            tid = config.teacher_id
            if tid is None or not is_finished(run_dir, tid):
                raise KdtuneError(f"teacher {tid} of trial {config.id} has not finished; run its stage first")
            self.teacher = load_trained_model(run_dir, tid, data.info, device)
            if task.cache_teacher and tr.augment is None:
                self.cached_logits = teacher_train_logits(run_dir, tid, data, task, config, self.teacher, eval_batch_size)

        self.optimizer = OPTIMIZERS.get(tr.optimizer)(self.model.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
        n = len(data.train)
        self.steps = max(1, n // tr.batch_size if n % tr.batch_size == 1 else math.ceil(n / tr.batch_size))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(config, self.steps))
        self.augment = (AUGMENTATIONS.get(tr.augment.name), dict(tr.augment.params)) if tr.augment else None
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.start_loss = 0.0
        self.best_value: tuple[float, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = tr.epochs
        self.window = select_window(config)
        self.path_epochs = {e for e in config.outputs.feature_epochs if e <= tr.epochs}  # later ones: skipped
        self.path_features: dict[int, np.ndarray] = {}
        if self.path_epochs:
            self.path_set = next((k for k in data.evals if k != "val"), "val")  # the first eval set, as analyses read
            split = data.evals[self.path_set]
            self.path_index = feature_index(len(split), config.outputs.feature_examples)
            idx = self.path_index.to(split.y.device)
            self.path_split = Split(take(split.x, idx), split.y[idx], {k: take(v, idx) for k, v in split.meta.items()})
            self._snapshot()  # epoch 0: the initialisation

    def _snapshot(self) -> None:
        """Keep the penultimate features of the fixed subset if this epoch is asked for (``outputs.feature_epochs``).
        Eval mode, no gradients, the training mode restored, every random state left as it was."""
        if self.epoch not in self.path_epochs:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type if devices else "cuda"):
            feats = self.task.predict(self.model, self.path_split, self.eval_batch_size)[1]
        self.path_features[self.epoch] = feats.float().cpu().numpy()

    @contextlib.contextmanager
    def _fresh_rng(self, seed: int | None = None) -> Iterator[None]:
        """Run with this trainer's own global random state (initialisation and dropout), leaving the
        caller's untouched."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type if devices else "cuda"):
            if seed is not None:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(self._rng)
                if devices:
                    torch.cuda.set_rng_state(self._cuda_rng, self.device)
            yield
            self._rng = torch.get_rng_state()
            if devices:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)

    @property
    def done(self) -> bool:
        """Whether every epoch has been trained."""
        return self.epoch >= self.config.train.epochs

    def train_epoch(self) -> dict[str, float]:
        """Train one epoch, validate, update the selected model; returns the epoch's history row
        (``epoch``, ``train_loss``, ``lr`` and ``val_<metric>`` for every validation metric)."""
        with self._fresh_rng():
            row = self._train_epoch()
        self._snapshot()
        return row

    def _train_epoch(self) -> dict[str, float]:
        config, tr, data, task, model = self.config, self.config.train, self.data, self.task, self.model
        perm, fault = self._begin_epoch()
        model.train()
        epoch, loss_sum = self.epoch, torch.zeros((), device=self.device)
        for i in range(self.steps):
            idx = self._batch_index(perm, i)
            x = batch_inputs(data.train.x, idx)
            if self.augment is not None:
                x = self.augment[0](x, generator=self.gen, **self.augment[1])
            t_logits = None
            if self.cached_logits is not None:
                t_logits = self.cached_logits[idx]
            elif self.teacher is not None:
                t_logits = task.teacher_logits(self.teacher, x)
            with dropout_keys(self.dropout_key, self._step(i)):
                logits, _ = task.outputs(model, x)
            loss = task.train_loss(
                logits, data.train, idx, x, t_logits, loss_for_epoch(config.loss, epoch, tr.epochs), tr.label_smoothing
            )
            if fault and i == self.fault_step:
                self._inject(fault, epoch)
                loss = loss * float("nan")  # only "nan" gets here
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tr.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if i == 0 and objective_starts(config.loss, epoch, tr.epochs):  # the loss's scale changes at a switch
                self.start_loss = float(loss.detach())
            loss_sum += loss.detach() * len(idx)
        return self._end_epoch(loss_sum)

    def _begin_epoch(self) -> tuple[torch.Tensor, str | None]:
        """Count the epoch; its data order (from this trainer's generator) and the fault injected in it, if any."""
        self.epoch += 1
        perm = torch.randperm(len(self.data.train), generator=self.gen, device=self.device)
        fault = injected_fault(self.run_dir, self.config.id, self.epoch) if FAULT_ENV in os.environ else None
        return perm, fault

    @property
    def fault_step(self) -> int:
        """The batch of an epoch after which an injected fault strikes (the second, or the only one)."""
        return min(1, self.steps - 1)

    def _batch_index(self, perm: torch.Tensor, i: int) -> torch.Tensor:
        """The rows of batch ``i`` of an epoch with order ``perm`` (the last batch takes the rest: no batch of one)."""
        n, bs = len(perm), self.config.train.batch_size
        return perm[i * bs : n if i == self.steps - 1 else (i + 1) * bs]

    def _step(self, i: int) -> int:
        """The training step of batch ``i`` of the current epoch, counted from 0 over the whole run (what keys dropout)."""
        return (self.epoch - 1) * self.steps + i

    def _end_epoch(self, loss_sum: torch.Tensor) -> dict[str, float]:
        """Validate the epoch just trained (summed training loss ``loss_sum``), check it for divergence,
        update the selected model; returns the epoch's history row."""
        config, tr, model, epoch = self.config, self.config.train, self.model, self.epoch
        val = self.task.validate(model, self.data.val, self.eval_batch_size)
        row = {"epoch": epoch, "train_loss": loss_sum.item() / len(self.data.train), "lr": self.optimizer.param_groups[0]["lr"]}
        row |= {"val_accuracy": float("nan")} | {f"val_{k}": v for k, v in val.items() if k != "n"}
        check_divergence(config, epoch, row["train_loss"], self.start_loss, model)
        self.history.append(row)
        key = selection_key(tr.select, row) if tr.select != "last" and epoch in self.window else None
        if key is not None and (self.best_value is None or key > self.best_value):
            self.best_value, self.best_epoch = key, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return row

    def _inject(self, fault: str, epoch: int) -> None:
        """Fail now as ``KDTUNE_FAULT`` asked (``nan`` returns: the caller poisons the loss; ``hang`` blocks until
        the process dies, a trial caught mid-epoch for a test that kills its node)."""
        if fault == "hang":
            while True:
                time.sleep(60)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "raise":
            raise InjectedFault(f"trial {self.config.id}, epoch {epoch}: fault injected by {FAULT_ENV}")

    def finish(self, export_train_logits: bool = False) -> dict[str, Any]:
        """Restore the selected epoch, evaluate every eval set, publish the trial folder; returns its
        ``metrics.json`` content."""
        config, data, task, model = self.config, self.data, self.task, self.model
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        bs = self.eval_batch_size
        writer = TrialWriter(self.run_dir, config.id)
        try:
            evals: dict[str, dict[str, float]] = {}
            arrays: dict[str, np.ndarray] = {}
            for name, split in data.evals.items():
                evals[name], saved = task.evaluate(
                    model, split, bs, config.outputs.feature_examples, self.teacher, name, config.data
                )
                arrays |= {f"{key}__{name}": value for key, value in saved.items()}
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, writer.path(MODEL))
            writer.save_outputs(arrays)
            if self.path_features:
                paths = {f"path_features__e{e}": f for e, f in sorted(self.path_features.items())}
                np.savez(
                    writer.path(PATHS),
                    **paths,
                    epochs=np.array(sorted(self.path_features)),
                    feature_index=self.path_index.numpy(),
                    eval_set=np.array(self.path_set),
                )
            if export_train_logits and task.cache_teacher:
                train_logits = task.predict(model, data.train, bs)[0].float().cpu().numpy()
                np.save(writer.path(f"train_logits-{config.data_fingerprint}.npy"), train_logits)
            result = {
                "status": "ok",
                "id": config.id,
                "seed": config.seed,
                "teacher_id": config.teacher_id,
                "best_epoch": self.best_epoch,
                "select_window": [self.window.start, self.window.stop - 1],
                "history": self.history,
                "eval": evals,
                "seconds": time.perf_counter() - self.start,
                "device": str(self.device),
                "host": socket.gethostname(),
                "node_id": ray_node_id(),
                "torch": torch.__version__,
                "num_parameters": sum(p.numel() for p in model.parameters()),
            }
            writer.commit({"id": config.id, "config": config.to_dict()}, result)
        except BaseException:
            writer.abort()
            raise
        log_training(self.run_dir, config.id, result["seconds"])
        return result


def ray_node_id() -> str | None:
    """The id of the Ray node this process runs on, or None outside Ray."""
    if "ray" not in sys.modules:  # never import Ray just to learn that it is not running
        return None
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def log_training(run_dir: Path, trial_id: str, seconds: float) -> None:
    """Append one line per committed training to ``<run>/logs/trainings.jsonl`` (an audit of what was
    trained, when and where; appends of one short line are atomic)."""
    path = Path(run_dir) / "logs" / "trainings.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"id": trial_id, "pid": os.getpid(), "host": socket.gethostname(), "node_id": ray_node_id(),
                       "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    with open(path, "a") as f:
        f.write(line + "\n")


def train_trial(
    config: TrialConfig,
    run_dir: Path,
    data_root: str | None,
    device: torch.device,
    export_train_logits: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    eval_batch_size: int = 512,
    tensorboard_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one trial and publish its folder; returns its ``metrics.json`` content. With ``tensorboard_dir``,
    each epoch's history row is also written there as TensorBoard scalars (step = epoch) as soon as it is trained."""
    trainer = Trainer(config, run_dir, data_root, device, eval_batch_size)
    board = epoch_board(tensorboard_dir) if tensorboard_dir is not None else None
    try:
        while not trainer.done:
            record_epoch(trainer.train_epoch(), board, on_epoch)
    finally:
        if board is not None:
            board.close()
    return trainer.finish(export_train_logits)


def record_epoch(row: dict[str, float], board: Any, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
    """Hand an epoch's history row to its TensorBoard writer (step = epoch) and to ``on_epoch``, where given."""
    if board is not None:
        for key, value in row.items():
            if key != "epoch":
                board.add_scalar(key, value, int(row["epoch"]))
        board.flush()
    if on_epoch is not None:
        on_epoch(row)


def epoch_board(folder: Path) -> Any:
    """A ``tensorboardX.SummaryWriter`` on an emptied ``folder``: one event file per trial, even after a retry."""
    from tensorboardX import SummaryWriter

    shutil.rmtree(folder, ignore_errors=True)  # an earlier attempt's curves
    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(logdir=str(folder), flush_secs=5)


def summarize(results: list[dict[str, Any]]) -> dict[str, float]:
    """What a group reports to Ray Tune: validation metrics averaged over its seeds."""
    out: dict[str, float] = {"trials": float(len(results))}
    for key in ("accuracy", "nll", "ece"):
        vals = [r["eval"]["val"][key] for r in results if "val" in r.get("eval", {})]
        if vals:
            out[f"val_{key}"] = float(np.mean(vals))
    return out

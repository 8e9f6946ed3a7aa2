"""One grid trained three ways: a plain PyTorch loop, kdtune one seed per trial, kdtune with seeds batched.

(a) ``plain``: one trial after another in one fresh Python process (timed from its launch, less the
benchmark's own planning, so Python's start and torch's import count as they do for kdtune), a
``DataLoader`` (``TensorDataset``, shuffle, the sweep's batch size) over the same tensors kdtune loads,
the model from kdtune's registry, the same optimizer, schedule, epochs and loss (CE from data; Hinton KD
on the teacher's training-set logits, computed once per teacher, for students), validation each epoch
(best epoch kept), the eval sets at the end: a KD code base as it is usually written.
(b) ``kdtune``: ``kdtune run`` on a copy of the sweep with ``execution.seeds_per_trial=1``, through Ray,
into a fresh run folder, timed from launch to exit.
(c) ``kdtune batched``: the same with ``seeds_per_trial`` = the grid's seed count (or ``--batched auto``).

Training time is measured from the outside: a ``sitecustomize`` put first on the ``PYTHONPATH`` of the
kdtune processes (driver and Ray workers) times every call of the trainers' ``train_epoch`` (an epoch's
steps and its validation) and of a few start-up functions, and writes the intervals to a folder. "outside
training" is ``1 - training / (wall × slots)``: ``training`` sums, per process, the time inside epochs;
``slots`` is how many trials run at once (cores ÷ resources.cpu, or 1 ÷ the GPU share; 1 for the plain
loop); an idle slot counts as time outside training.

Usage: python bench/seed_batching.py --grid quickstart|mnist-mlp|mnist-cnn [--epochs E] [--device cpu|cuda]
       [--batched K|auto] [--only plain,kdtune,batched] [--set KEY=VALUE] [--data-dir DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # the data folder the tests use

# functions timed in kdtune's processes: module -> qualified names (what does not exist is skipped)
TIMED = {
    "kdtune.app": ["load_plan", "run_sweep"],
    "kdtune.spec.sweepfile": ["load_sweep"],
    "kdtune.plan": ["make_plan"],
    "kdtune.train.data": ["_load_cpu", "_load_on", "_fingerprint"],
    "kdtune.run.execute": [
        "execute",
        "run_group",
        "quarantine_damaged",
        "RayExecutor.__enter__",
        "RayExecutor.__exit__",
        "RayExecutor.run_stages",
        "Stages.start",
        "Stages.end",
        "RayExecutor.close",
    ],
    "kdtune.train.trainer": [
        "Trainer.__init__",
        "Trainer.train_epoch",
        "Trainer.finish",
        "load_trained_model",
        "teacher_train_logits",
    ],
    "torch.optim.optimizer": ["Optimizer.__init__"],
    "kdtune.train.batched": ["SeedBatch.__init__", "SeedBatch.train_epoch", "train_together"],
    "kdtune.run.ledger": ["write_sweep_record", "record_outcome", "collect"],
    "kdtune.results.reader": ["collect_run", "write_results"],
    "kdtune.results.tables": ["render"],
}
EPOCH_FUNCTIONS = ("kdtune.train.trainer.Trainer.train_epoch", "kdtune.train.batched.SeedBatch.train_epoch")

SITECUSTOMIZE = '''\
"""Written by kdtune's bench/seed_batching.py: times the functions named in $KDTUNE_BENCH_TIMED."""
import functools, importlib.abc, json, os, sys, time

_START = time.time()
_FOLDER = os.environ.get("KDTUNE_BENCH_EVENTS")
_TIMED = json.loads(os.environ.get("KDTUNE_BENCH_TIMED", "{}"))
_seen = []


def _write(name, start, end):
    with open(os.path.join(_FOLDER, f"{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "name": name, "start": start, "end": end}) + "\\n")


def _timed(fn, name):
    @functools.wraps(fn)
    def inner(*args, **kwargs):
        start = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            _write(name, start, time.time())

    return inner


def _patch(module, import_start):
    if not _seen:
        _seen.append(True)
        _write("process", _START, _START)
    _write("import:" + module.__name__, import_start, time.time())
    for qual in _TIMED.get(module.__name__, ()):
        *path, attr = qual.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part, None)
        fn = getattr(owner, attr, None) if owner is not None else None
        if callable(fn):
            setattr(owner, attr, _timed(fn, module.__name__ + "." + qual))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _TIMED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    start = time.time()
                    run(module)
                    _patch(module, start)

                spec.loader.exec_module = exec_module
                return spec
        return None


if _FOLDER:
    sys.meta_path.insert(0, _Finder())
'''


@dataclass
class Grid:
    """A benchmark grid: a sweep file and the ``--set`` overrides that cut it."""

    sweep: Path
    overrides: list[str]
    data_root: Path | None


def make_grid(name: str, epochs: int | None, data_dir: str | None) -> Grid:
    """The grid ``name`` (quickstart, mnist-mlp, mnist-cnn), cut to ``epochs`` if given."""
    if name == "quickstart":
        sets = [] if epochs is None else [f"train.epochs={epochs}"]
        return Grid(REPO / "sweeps" / "quickstart.yaml", sets, Path(data_dir) if data_dir else None)
    label = {"mnist-mlp": "MLP", "mnist-cnn": "CNN"}[name]
    e = 2 if epochs is None else epochs
    sets = [f"grid.students=[{label}]", "grid.teachers=[data]", "grid.seeds=4", f"train.epochs={e}"]
    sets += [f"models.{label}.train.epochs={e}"] if label == "MLP" else []  # the MLP's own 20 epochs
    root = Path(data_dir) if data_dir else SHARED_DATA
    if not (root / "MNIST").is_dir():
        sys.exit(f"seed_batching: {root} has no MNIST folder; pass --data-dir (kdtune download mnist --data-dir DIR)")
    return Grid(REPO / "sweeps" / "mnist_c_cpu.yaml", sets, root)


def device_sets(device: str, gpu_share: float) -> list[str]:
    """The ``--set`` overrides that put every trial on ``device``."""
    if device == "cuda":
        return ["execution.device=cuda", f"resources.gpu={gpu_share:g}"]
    return ["execution.device=cpu", "resources.gpu=0"]


@dataclass
class Outcome:
    """One way of training the grid: wall seconds, seconds inside epochs (summed over processes), slots."""

    way: str
    trials: int
    trial_epochs: int
    wall: float
    training: float
    slots: int
    note: str = ""


def load_plan(grid: Grid, sets: Sequence[str], out: Path):
    """kdtune's plan of the grid (the trials every way trains)."""
    from kdtune.plan import make_plan
    from kdtune.spec.sweepfile import load_sweep

    return make_plan(load_sweep(grid.sweep, list(sets), data_root=grid.data_root, output=out))


def plain_loop(plan: Any, device: str, threads: int | None = None) -> Outcome:
    """(a): the grid as a plain PyTorch loop, one trial after another (see the module docstring); its wall
    time starts at loading the data (:func:`run_plain` adds the interpreter's start and imports)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from kdtune.train import data as kdata
    from kdtune.train.data import load_data
    from kdtune.train.data.augment import AUGMENTATIONS
    from kdtune.train.models import build_model
    from kdtune.train.optim import OPTIMIZERS, SCHEDULES

    spec = plan.spec
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    kdata._load_cpu.cache_clear()  # loaded for the plan: load it again, as a fresh process would
    kdata._load_on.cache_clear()
    start = time.perf_counter()
    data = load_data(spec.data, spec.data_root, "cpu")
    if data.info.task != "classification" or isinstance(data.train.x, dict):
        sys.exit(f"seed_batching: the plain loop handles image classification only, not {data.info.task}")
    pin = dev.type == "cuda"
    eval_bs = spec.execution.eval_batch_size

    def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size=eval_bs, pin_memory=pin):
                correct += int((model(xb.to(dev))[0].argmax(-1) == yb.to(dev)).sum())
        return correct / len(y)

    def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([model(xb.to(dev))[0].cpu() for (xb,) in DataLoader(TensorDataset(x), batch_size=eval_bs)])

    train_logits: dict[str, torch.Tensor] = {}
    training = 0.0
    trial_epochs = 0
    for trial in (t for g in plan.groups() for t in g.trials):
        cfg, tr = trial.config, trial.config.train
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.arch, data.info, tr.dropout, dict(cfg.params)).to(dev)
        opt = OPTIMIZERS.get(tr.optimizer)(model.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
        tensors = [data.train.x, data.train.y] + ([train_logits[cfg.teacher_id]] if cfg.loss.distills else [])
        n = len(data.train)
        loader = DataLoader(
            TensorDataset(*tensors),
            batch_size=tr.batch_size,
            shuffle=True,
            drop_last=n % tr.batch_size == 1,  # no batch of one (BatchNorm)
            generator=torch.Generator().manual_seed(cfg.seed),
            pin_memory=pin,
        )
        schedule, params = SCHEDULES.get(tr.schedule.name), dict(tr.schedule.params)
        steps = len(loader)
        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s, f=schedule, n=steps, e=tr.epochs, p=params: f(s / n, e, **p))
        augment = (AUGMENTATIONS.get(tr.augment.name), dict(tr.augment.params)) if tr.augment else None
        aug_gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        loss_spec = cfg.loss
        best, best_state = -1.0, None
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(tr.epochs):
            model.train()
            for batch in loader:
                xb, yb = batch[0].to(dev, non_blocking=pin), batch[1].to(dev, non_blocking=pin)
                if augment is not None:
                    xb = augment[0](xb, generator=aug_gen, **augment[1])
                logits = model(xb)[0]
                loss = logits.new_zeros(())
                if loss_spec.w_hard:
                    loss = loss + loss_spec.w_hard * F.cross_entropy(logits, yb, label_smoothing=tr.label_smoothing)
                if loss_spec.distills and loss_spec.w_soft:
                    tau = loss_spec.temperature
                    t_logits = batch[2].to(dev, non_blocking=pin)
                    log_p_s, log_p_t = F.log_softmax(logits / tau, -1), F.log_softmax(t_logits / tau, -1)
                    kd = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
                    loss = loss + loss_spec.w_soft * kd * tau * tau
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tr.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
                opt.step()
                lr_sched.step()
            acc = accuracy(model, data.val.x, data.val.y)
            if acc > best:
                best, best_state = acc, copy.deepcopy(model.state_dict())
        if dev.type == "cuda":
            torch.cuda.synchronize()
        training += time.perf_counter() - t0
        trial_epochs += tr.epochs
        model.load_state_dict(best_state)
        for split in data.evals.values():
            accuracy(model, split.x, split.y)
        if trial.id in plan.needs_train_logits:
            train_logits[trial.id] = logits_of(model, data.train.x)
    wall = time.perf_counter() - start
    n = torch.get_num_threads()
    threads = f"{n} thread{'s' if n != 1 else ''}"
    return Outcome("(a) plain PyTorch loop", len(plan.trials), trial_epochs, wall, training, 1, threads)


def run_plain(grid: Grid, sets: Sequence[str], device: str, threads: int | None, work: Path) -> Outcome:
    """(a) in a fresh interpreter, so that its wall time includes starting Python and importing torch, as
    kdtune's does; the time the benchmark spends planning the grid there is not counted."""
    work.mkdir(parents=True)
    result = work / "plain.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain-json", str(result), "--device", device]
    cmd += ["--sweep-file", str(grid.sweep), "--out", str(work / "plan")]
    cmd += ["--data-dir", str(grid.data_root)] if grid.data_root else []
    cmd += ["--plain-threads", str(threads)] if threads else []
    cmd += [a for s in sets for a in ("--set", s)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"seed_batching: the plain loop failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    got = json.loads(result.read_text())
    o = Outcome(**got["outcome"])
    o.wall = wall - got["plan_seconds"]
    return o


def plain_child(args: argparse.Namespace) -> None:
    """The fresh interpreter of :func:`run_plain`: plan the grid (not timed), run (a), write its outcome."""
    import dataclasses

    start = time.perf_counter()
    grid = Grid(Path(args.sweep_file), [], Path(args.data_dir) if args.data_dir else None)
    plan = load_plan(grid, args.sets, Path(args.out))
    plan_seconds = time.perf_counter() - start
    outcome = plain_loop(plan, args.device, args.plain_threads)
    Path(args.plain_json).write_text(json.dumps({"outcome": dataclasses.asdict(outcome), "plan_seconds": plan_seconds}))


def merged(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of ``intervals``."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def read_events(folder: Path) -> list[dict[str, Any]]:
    """The intervals the sitecustomize wrote, every process's."""
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines() if line]


def training_seconds(events: list[dict[str, Any]]) -> float:
    """Seconds inside epochs, per process (nested calls counted once), summed over processes."""
    per_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        if e["name"] in EPOCH_FUNCTIONS:
            per_pid[e["pid"]].append((e["start"], e["end"]))
    return sum(merged(v) for v in per_pid.values())


def timed_env(work: Path) -> tuple[dict[str, str], Path]:
    """The environment of a timed kdtune process (its sitecustomize first on the path), and the events folder."""
    hook, events = work / "hook", work / "events"
    hook.mkdir(parents=True, exist_ok=True)
    events.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["KDTUNE_BENCH_EVENTS"] = str(events)
    env["KDTUNE_BENCH_TIMED"] = json.dumps(TIMED)
    return env, events


def kdtune_command(grid: Grid, sweep_copy: Path, out: Path, sets: Sequence[str]) -> list[str]:
    """``python -m kdtune run`` of the grid into ``out`` (this checkout's kdtune)."""
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep_copy), "--out", str(out)]
    cmd += ["--data-dir", str(grid.data_root)] if grid.data_root else []
    return cmd + [a for s in sets for a in ("--set", s)]


def run_kdtune(way: str, grid: Grid, sets: Sequence[str], work: Path, slots: int) -> Outcome:
    """(b) or (c): ``kdtune run`` end to end in a subprocess, timed from launch to exit."""
    work.mkdir(parents=True)
    sweep_copy = work / grid.sweep.name
    shutil.copy(grid.sweep, sweep_copy)
    out = work / "run"
    env, events_dir = timed_env(work)
    cmd = kdtune_command(grid, sweep_copy, out, sets)
    log = work / "kdtune.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        sys.exit(f"seed_batching: {shlex.join(cmd)} exited with {rc}:\n{tail}")
    plan = load_plan(grid, sets, out)
    metrics = [out / "trials" / tid / "metrics.json" for tid in plan.trials]
    missing = [p for p in metrics if not p.is_file()]
    if missing:
        sys.exit(f"seed_batching: {len(missing)} trial(s) of {way} have no metrics.json (see {log})")
    trial_epochs = sum(t.config.train.epochs for t in plan.trials.values())
    events = read_events(events_dir)
    return Outcome(way, len(plan.trials), trial_epochs, wall, training_seconds(events), slots)


def ray_slots(cores: int, cpu: float, gpu: float, device: str, max_concurrent: int | None) -> int:
    """How many trials Ray runs at once on this machine."""
    n = max(1, int(cores // cpu)) if cpu else cores
    if device == "cuda" and gpu:
        n = min(n, max(1, int(1 // gpu)))
    return min(n, max_concurrent) if max_concurrent else n


def table(outcomes: list[Outcome]) -> str:
    """The markdown table of the outcomes, ratios to the first (the plain loop) if it ran."""
    base = next((o for o in outcomes if o.way.startswith("(a)")), None)
    rows = [
        "| way | trials | trial-epochs | wall s | trial-epochs/s | ratio to (a) | training s | slots | outside training |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for o in outcomes:
        rate = o.trial_epochs / o.wall
        ratio = f"{rate / (base.trial_epochs / base.wall):.2f}×" if base else "–"
        outside = 1 - o.training / (o.wall * o.slots)
        way = o.way + (f" ({o.note})" if o.note else "")
        cells = [
            way,
            o.trials,
            o.trial_epochs,
            f"{o.wall:.1f}",
            f"{rate:.2f}",
            ratio,
            f"{o.training:.1f}",
            o.slots,
            f"{outside:.0%}",
        ]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=("quickstart", "mnist-mlp", "mnist-cnn"), default="quickstart")
    parser.add_argument("--epochs", type=int, help="epochs of every trial (default: quickstart as is, MNIST 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpu-share", type=float, default=0.25, help="resources.gpu per trial with --device cuda (default 0.25)")
    parser.add_argument("--batched", default=None, help="seeds_per_trial of (c): a number or auto (default: the grid's seeds)")
    parser.add_argument(
        "--plain-threads", type=int, help="torch threads of the plain loop (default: resources.cpu, as a kdtune trial gets)"
    )
    parser.add_argument("--only", default="plain,kdtune,batched", help="ways to run, comma-separated (default: all three)")
    parser.add_argument("--data-dir", help=f"data folder (default for MNIST: {SHARED_DATA})")
    parser.add_argument("--keep", help="keep the run folders and logs under this folder (default: a temporary one)")
    for hidden in ("--plain-json", "--sweep-file", "--out"):  # run_plain's child process
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="another sweep override, for every way"
    )
    args = parser.parse_args(argv)
    if args.plain_json:
        plain_child(args)
        return
    if args.epochs is not None and not 1 <= args.epochs <= 100:
        parser.error(f"--epochs must be between 1 and 100, got {args.epochs}")
    if args.plain_threads is not None and args.plain_threads < 1:
        parser.error(f"--plain-threads must be >= 1, got {args.plain_threads}")
    if args.device == "cuda" and not 0 < args.gpu_share <= 1:
        parser.error(f"--gpu-share must be in (0, 1], got {args.gpu_share}")
    ways = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in ways if w not in ("plain", "kdtune", "batched")]
    if unknown or not ways:
        parser.error(f"--only: unknown way {unknown[0] if unknown else '(none)'}; allowed: plain, kdtune, batched")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("seed_batching: --device cuda but torch sees no CUDA device")
    grid = make_grid(args.grid, args.epochs, args.data_dir)
    sets = grid.overrides + args.sets + device_sets(args.device, args.gpu_share)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kdtune-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    plan = load_plan(grid, sets, work / "plan")
    spec = plan.spec
    seeds = len(spec.grid.seeds)
    batched = args.batched or str(seeds)
    cores = os.cpu_count() or 1
    if args.plain_threads is None:
        args.plain_threads = max(1, int(spec.resources.cpu))
    slots = ray_slots(cores, spec.resources.cpu, spec.resources.gpu, args.device, spec.execution.max_concurrent_trials)
    gpu = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"$ {shlex.join(['python', 'bench/seed_batching.py', *(sys.argv[1:] if argv is None else argv)])}")
    torch_line = f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels)"
    print(f"machine: {platform.node()}, {cores} cores{gpu}; {torch_line}, Python {platform.python_version()}")
    print(f"grid: {grid.sweep.relative_to(REPO)} {' '.join('--set ' + s for s in sets)}")
    print(f"      {len(plan.trials)} trials, {seeds} seeds, {plan.spec.name}; run folders under {work}", flush=True)

    outcomes: list[Outcome] = []
    try:
        if "plain" in ways:
            outcomes.append(run_plain(grid, sets, args.device, args.plain_threads, work / "plain"))
            print(f"  done: {outcomes[-1].way} in {outcomes[-1].wall:.1f} s", flush=True)
        if "kdtune" in ways:
            one = [*sets, "execution.seeds_per_trial=1"]
            outcomes.append(run_kdtune("(b) kdtune, 1 seed per trial", grid, one, work / "kdtune-1", slots))
            print(f"  done: {outcomes[-1].way} in {outcomes[-1].wall:.1f} s", flush=True)
        if "batched" in ways:
            k = [*sets, f"execution.seeds_per_trial={batched}"]
            outcomes.append(run_kdtune(f"(c) kdtune, seeds_per_trial={batched}", grid, k, work / f"kdtune-{batched}", slots))
            print(f"  done: {outcomes[-1].way} in {outcomes[-1].wall:.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(outcomes))
    print()
    print("training s: seconds inside epochs (steps and validation), summed over processes; outside training:")
    print("1 - training / (wall × slots), slots = trials at once (1 for the plain loop).")


if __name__ == "__main__":
    main()

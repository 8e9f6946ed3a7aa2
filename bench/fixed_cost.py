"""The fixed cost of a run: where the seconds of ``kdtune run sweeps/quickstart.yaml`` go outside training.

Runs the sweep into a fresh folder ``--repeat`` times (as ``python -m kdtune run``, this checkout's kdtune),
timing from the outside: the ``sitecustomize`` of ``bench/seed_batching.py`` records when each kdtune
process started and when a few functions ran (loading the sweep and data, starting Ray, the Tuner and
each stage's start and end, each trainer's set-up, epochs and final evaluation, results, report). Prints the phases before
the first training step, between stages and after the last trial, the median and minimum of each over
the repeats, and the import times of the heavy packages (``python -X importtime``, one fresh process each).

Usage: python bench/fixed_cost.py [--sweep sweeps/quickstart.yaml] [--epochs E] [--repeat 3] [--executor ray|inline]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_batching import EPOCH_FUNCTIONS, REPO, read_events, timed_env, training_seconds

EPOCHS = EPOCH_FUNCTIONS
SETUPS = ("kdtune.train.trainer.Trainer.__init__",)
FINISHES = ("kdtune.train.trainer.Trainer.finish",)
LOAD = "kdtune.train.data._load_cpu"
IMPORTS = ("torch", "ray", "ray.tune", "pandas", "sklearn.datasets", "kdtune.cli", "kdtune.train.trainer")


def first(events: list[dict[str, Any]], names: Sequence[str], pid: int | None = None) -> dict[str, Any] | None:
    """The earliest event named one of ``names`` (of process ``pid`` if given)."""
    hits = [e for e in events if e["name"] in names and (pid is None or e["pid"] == pid)]
    return min(hits, key=lambda e: e["start"]) if hits else None


def phases(events: list[dict[str, Any]], launch: float, exit_: float) -> dict[str, float]:
    """Seconds of each phase of one run, from its events (``launch``/``exit_``: the command's start and end)."""
    driver = next(e["pid"] for e in events if e["name"] == "kdtune.app.load_plan")
    d = [e for e in events if e["pid"] == driver]

    def one(name: str) -> dict[str, Any]:
        return next(e for e in d if e["name"] == name)

    def total(name: str) -> float:
        return sum(e["end"] - e["start"] for e in d if e["name"] == name)

    load, ray_start = one("kdtune.app.load_plan"), [e for e in d if e["name"] == "kdtune.run.execute.RayExecutor.__enter__"]
    tuners = sorted((e for e in d if e["name"] == "kdtune.run.execute.RayExecutor.run_stages"), key=lambda e: e["start"])
    starts = sorted((e for e in d if e["name"] == "kdtune.run.execute.Stages.start"), key=lambda e: e["start"])
    stage_ends = sorted((e for e in d if e["name"] == "kdtune.run.execute.Stages.end"), key=lambda e: e["start"])
    # a stage: from the moment its groups are handed out until it is declared over (one Tuner runs them all)
    stages = [{"start": s["start"], "end": e["end"]} for s, e in zip(starts, stage_ends, strict=False)]
    data = sum(e["end"] - e["start"] for e in d if e["name"] == LOAD and load["start"] <= e["start"] <= load["end"])
    epoch1 = first(events, EPOCHS)
    assert epoch1 is not None, "no epoch was trained"
    out: dict[str, float] = {}
    out["interpreter and CLI imports"] = load["start"] - launch
    out["sweep, data, fingerprint, plan (driver)"] = load["end"] - load["start"]
    out["  driver: of which loading the data"] = data
    begin = ray_start[0]["start"] if ray_start else stages[0]["start"] if stages else load["end"]
    out["run folder, lock, sweep record"] = begin - load["end"]
    out["Ray start (import ray, ray.tune; ray.init)"] = sum(e["end"] - e["start"] for e in ray_start)
    if stages:  # the worker that trained first: when it started, imported kdtune and set its trainer up
        w = epoch1["pid"]
        proc = first(events, ("process",), w)
        imported = first(events, ("import:kdtune.run.execute", "import:kdtune.train.trainer"), w)
        setup = first(events, SETUPS, w)
        tuner_start = tuners[0]["start"] if tuners else stages[0]["start"]
        out["Tuner set-up until the worker process starts"] = proc["start"] - tuner_start
        out["worker: Ray worker start-up until it imports kdtune"] = imported["start"] - proc["start"]
        out["worker: importing kdtune (torch, …)"] = imported["end"] - imported["start"]
        out["worker: waiting for the trial"] = setup["start"] - imported["end"]
        out["worker: trainer set-up (data, model, optimizer, teacher)"] = setup["end"] - setup["start"]
        mine = [e for e in events if e["pid"] == w and e["start"] <= setup["end"]]
        load_w = sum(e["end"] - e["start"] for e in mine if e["name"] == LOAD)
        out["  worker: of which loading the data"] = load_w
        opt = [e for e in mine if e["name"] == "torch.optim.optimizer.Optimizer.__init__"]
        out["  worker: of which the first optimizer (imports torch._dynamo)"] = opt[0]["end"] - opt[0]["start"] if opt else 0.0
        out["worker: until the first epoch"] = epoch1["start"] - setup["end"]
    out["COMMAND → FIRST TRAINING STEP"] = epoch1["start"] - launch
    for k in range(1, len(stages)):
        prev, stage = stages[k - 1], stages[k]
        inside = [e for e in events if e["name"] in EPOCHS and stage["start"] <= e["start"] <= stage["end"]]
        start_k = min(e["start"] for e in inside) if inside else stage["end"]
        ends = [e["end"] for e in events if e["name"] in FINISHES and prev["start"] <= e["end"] <= prev["end"]]
        out[f"stage {k}: its last trial → the stage ends"] = prev["end"] - max(ends) if ends else 0.0
        out[f"stage {k + 1}: its start → first training step"] = start_k - stage["start"]
        out[f"BETWEEN STAGES {k} AND {k + 1} (last trial → first step)"] = start_k - max(ends) if ends else start_k - prev["end"]
    finish = max(e["end"] for e in events if e["name"] in FINISHES)
    render = [e for e in d if e["name"] == "kdtune.results.tables.render"]
    last_end = tuners[-1]["end"] if tuners else stages[-1]["end"] if stages else finish
    out["last trial → the Tuner returns"] = last_end - finish
    out["Ray shutdown (after the table since it lingers)"] = total("kdtune.run.execute.RayExecutor.__exit__") + total(
        "kdtune.run.execute.RayExecutor.close"
    )
    out["results (record, collect_run, write_results, collect)"] = sum(
        total(f"kdtune.{m}.{n}")
        for m, n in (
            ("ledger", "record_outcome"),
            ("results", "collect_run"),
            ("results", "write_results"),
            ("ledger", "collect"),
        )
    )
    out["report table (render)"] = total("kdtune.results.tables.render")
    out["LAST TRIAL → PRINTED TABLE"] = (render[-1]["end"] if render else exit_) - finish
    out["printed table → exit (Ray shutdown, Python's exit)"] = exit_ - (render[-1]["end"] if render else exit_)
    out["WALL"] = exit_ - launch
    out["training (inside epochs, summed over workers)"] = training_seconds(events)
    return out


def run_once(sweep: Path, sets: Sequence[str], executor: str, work: Path) -> dict[str, float]:
    """One ``kdtune run`` of ``sweep`` into a fresh folder under ``work``; its phases."""
    work.mkdir(parents=True)
    env, events_dir = timed_env(work)
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(work / "run"), "--executor", executor]
    cmd += [a for s in sets for a in ("--set", s)]
    log = work / "kdtune.log"
    launch = time.time()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    exit_ = time.time()
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        sys.exit(f"fixed_cost: {shlex.join(cmd)} exited with {rc}:\n{tail}")
    return phases(read_events(events_dir), launch, exit_)


def import_times(repeat: int) -> dict[str, list[float]]:
    """Cumulative import seconds of each heavy package, each in a fresh interpreter (``-X importtime``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        for name in IMPORTS:
            cmd = [sys.executable, "-X", "importtime", "-c", f"import {name}"]
            err = subprocess.run(cmd, env=env, capture_output=True, text=True).stderr
            pattern = re.compile(rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(name)}$", re.M)
            m = pattern.search(err)
            out[name].append(int(m.group(1)) / 1e6 if m else float("nan"))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default=str(REPO / "sweeps" / "quickstart.yaml"))
    parser.add_argument("--epochs", type=int, help="cut every trial to this many epochs (default: the sweep's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the median and minimum over (default 3)")
    parser.add_argument("--executor", choices=("ray", "inline"), default="ray")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="more --set overrides")
    parser.add_argument("--no-imports", action="store_true", help="skip the import-time table")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    sweep = Path(args.sweep).resolve()
    if not sweep.is_file():
        parser.error(f"--sweep {args.sweep}: no such file")
    sets = list(args.sets) + ([f"train.epochs={args.epochs}"] if args.epochs else [])

    import torch

    print(f"$ {shlex.join(['python', 'bench/fixed_cost.py', *(sys.argv[1:] if argv is None else argv)])}")
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}, Python {platform.python_version()}")  # fmt: skip
    shown = sweep.relative_to(REPO) if sweep.is_relative_to(REPO) else sweep
    flags = " ".join(f"--set {s}" for s in sets)
    print(f"run: kdtune run {shown} {flags + ' ' if flags else ''}--executor {args.executor}, {args.repeat}× into fresh folders")
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="kdtune-fixed-") as tmp:
        for i in range(args.repeat):
            runs.append(run_once(sweep, sets, args.executor, Path(tmp) / f"run{i}"))
            print(f"  run {i + 1}: wall {runs[-1]['WALL']:.1f} s", flush=True)
            shutil.rmtree(Path(tmp) / f"run{i}" / "run", ignore_errors=True)
    keys = list(dict.fromkeys(k for r in runs for k in r))
    print()
    print(f"| phase | median s | min s |  (over {len(runs)} runs)")
    print("| --- | --: | --: |")
    for k in keys:
        vals = [r[k] for r in runs if k in r]
        bold = "**" if k.isupper() or k.startswith(("COMMAND", "LAST", "BETWEEN")) else ""
        print(f"| {bold}{k}{bold} | {statistics.median(vals):.2f} | {min(vals):.2f} |")
    if not args.no_imports:
        times = import_times(args.repeat)
        print("\n| import (fresh interpreter, cumulative) | median s | min s |")
        print("| --- | --: | --: |")
        for name, vals in times.items():
            print(f"| {name} | {statistics.median(vals):.2f} | {min(vals):.2f} |")


if __name__ == "__main__":
    main()

"""Ray Tune's own cost per trial on this machine, with and without actor reuse.

Runs N tiny trials (the digits MLP, 1 epoch) through kdtune's Ray executor twice (reuse_actors on,
then off) and through the inline executor, and prints the wall time per trial beyond the trials'
own compute. Usage: python bench/ray_overhead.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, RayExecutor, execute
from kdtune.run.ledger import collect
from kdtune.spec.sweepfile import parse_sweep


def sweep(n: int, out: Path):
    raw = {
        "name": "overhead",
        "data": {"name": "digits", "eval_sets": ["test"]},
        "models": {"MLP": {"arch": "mlp", "params": {"hidden": [32]}}},
        "train": {"epochs": 1, "batch_size": 256},
        "grid": {"students": ["MLP"], "seeds": n},
        "outputs": {"feature_examples": 10},
    }
    return parse_sweep(raw, "overhead.yaml", output=out)


def run(n: int, executor: str, reuse: bool = True) -> tuple[float, float]:
    """(wall seconds of the stage, summed seconds inside the trials)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = sweep(n, Path(tmp) / "run")
        plan = make_plan(spec)
        if executor == "inline":
            ex = InlineExecutor()
        else:
            ex = RayExecutor(None, 1, 0, None, 0, Path(tmp) / "ray")
            ex.__enter__()  # start Ray outside the timed region
        from ray import tune

        real = tune.TuneConfig
        with mock.patch.object(tune, "TuneConfig", lambda **kw: real(**(kw | {"reuse_actors": reuse}))):
            start = time.perf_counter()
            execute(plan, ex, log=lambda s: None)
            wall = time.perf_counter() - start
        if executor != "inline":
            ex.__exit__()
        return wall, float(collect(plan).drop_duplicates("trial_id")["seconds"].sum())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    import os

    cores = os.cpu_count() or 1
    print(f"{n} trials (digits MLP, 1 epoch each), {cores} cores")
    for label, executor, reuse in (("inline", "inline", True), ("ray, reuse_actors=True", "ray", True),
                                   ("ray, reuse_actors=False", "ray", False)):  # fmt: skip
        wall, inside = run(n, executor, reuse)
        parallel = 1 if executor == "inline" else min(cores, n)
        overhead = (wall - inside / parallel) / n * parallel
        print(f"{label:26s} wall {wall:6.1f} s   inside trials {inside:6.1f} s   Ray/driver cost per trial {overhead:5.2f} s")


if __name__ == "__main__":
    main()

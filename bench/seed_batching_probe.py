"""Probe: does training k seeds as one vmapped model (kdtune.train.batched) beat training them one after another?

For each case (a model on inputs shaped like a data set) it times training steps of k seeds (Adam, batch 64,
keyed dropout ``--dropout`` (0.1), random inputs and labels) both ways, median of ``--repeats``, and prints seconds per step
of all k seeds and the speedup, with the forward FLOPs of one step of one seed (what ``seeds_per_trial: auto``
reads on a CPU). Usage: ``python bench/seed_batching_probe.py [--threads 1] [--steps 20] [--repeats 5]``.

``--run-group ARCH`` instead times whole groups end to end through :func:`kdtune.run.execute.run_group` (digits,
the quickstart's MLP 256-128 or CNN 16-16-32, batch 64, ``--epochs`` 5, evaluation and checkpoints included):
k seeds as k one-seed groups, then as one group of k.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from kdtune.plan import forward_flops
from kdtune.train.data.base import DataInfo
from kdtune.train.models import build_model
from kdtune.train.models.layers import dropout_keys

CASES = [  # label, data kind, arch, params, input shape, classes
    ("digits MLP 144-256-128", "image", "mlp", {"hidden": (256, 128)}, (1, 12, 12), 10),
    ("digits CNN 16-16-32", "image", "cnn", {"channels": (16, 16, 32)}, (1, 12, 12), 10),  # the quickstart's
    ("digits CNN 32-32-64", "image", "cnn", {"channels": (32, 32, 64)}, (1, 12, 12), 10),
    ("digits CNN 8-8-16", "image", "cnn", {"channels": (8, 8, 16)}, (1, 12, 12), 10),
    ("MNIST MLP 784-512-256", "image", "mlp", {"hidden": (512, 256)}, (1, 28, 28), 10),
    ("MNIST CNN 32-32-64", "image", "cnn", {"channels": (32, 32, 64)}, (1, 28, 28), 10),
    # the symmetry sweeps' models: particle_sets (16 particles x 3 features) and shapes (32 points in 3-D)
    ("sets DeepSets-inv 64", "set", "deepsets_inv", {"width": 64, "phi_layers": 3, "rho_layers": 1}, (16, 3), 5),
    ("sets DeepSets-equiv 64", "set", "deepsets_equiv", {"width": 64, "layers": 3, "head_layers": 1}, (16, 3), 5),
    ("sets MLP 64-64-64", "set", "mlp", {"hidden": (64, 64, 64)}, (16, 3), 5),
    ("points DGCNN 4x8 k8", "points", "dgcnn", {"edge_convs": 4, "width": 8, "k": 8}, (32, 3), 10),
]
BATCH = 64


def time_alone(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per step of every model, one after another (the one-seed path's work)."""
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    start = time.perf_counter()
    for i in range(steps):
        for j, (m, opt) in enumerate(zip(models, opts, strict=True)):
            with dropout_keys(torch.tensor(j), i):
                loss = F.cross_entropy(m(x[j, i])[0], y[j, i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / steps


def time_batched(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per step of all models as one vmapped model (kdtune.train.batched's work)."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.Adam(list(params.values()), lr=1e-3)
    keys = torch.arange(len(models))

    def one(p: dict, b: dict, key: torch.Tensor, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        with dropout_keys(key, step):
            return F.cross_entropy(functional_call(base, (p, b), (x,))[0], y)

    loss_fn = vmap(one, in_dims=(0, 0, 0, 0, 0, None), randomness="error")
    start = time.perf_counter()
    for i in range(steps):
        losses = loss_fn(params, buffers, keys, x[:, i], y[:, i], i)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
    return (time.perf_counter() - start) / steps


GROUP_SWEEP = {
    "name": "probe",
    "data": {"name": "digits", "eval_sets": ["test"]},
    "models": {
        "CNN": {"arch": "cnn", "params": {"channels": [16, 16, 32]}},
        "MLP": {"arch": "mlp", "params": {"hidden": [256, 128]}},
    },
    "train": {"batch_size": 64, "lr": 0.003},
    "grid": {"teachers": ["data"]},
    "outputs": {"feature_examples": 50},
}


def time_groups(label: str, seeds: int, k: int, epochs: int, root: Path) -> float:
    """Seconds to train ``seeds`` seeds of model ``label`` through run_group, ``k`` seeds per group."""
    from kdtune.plan import make_plan
    from kdtune.run.execute import group_payload, run_group
    from kdtune.spec.sweepfile import parse_sweep

    raw = copy.deepcopy(GROUP_SWEEP) | {"execution": {"seeds_per_trial": k}}
    raw["train"]["epochs"] = epochs
    raw["grid"] |= {"students": [label], "seeds": seeds}
    shutil.rmtree(root, ignore_errors=True)
    plan = make_plan(parse_sweep(raw, "probe.yaml", output=root))
    start = time.perf_counter()
    for group in plan.groups():
        run_group(group_payload(plan, group, root, None))
    return time.perf_counter() - start


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--cases", nargs="+", default=None, help="labels of the cases to run (default: all)")
    ap.add_argument("--run-group", choices=["MLP", "CNN"], help="time whole groups end to end instead")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run_group:
        with tempfile.TemporaryDirectory() as tmp:
            for seeds in [k for k in args.ks if k > 1]:
                alone = [time_groups(args.run_group, seeds, 1, args.epochs, Path(tmp) / "a") for _ in range(args.repeats)]
                batched = [time_groups(args.run_group, seeds, seeds, args.epochs, Path(tmp) / "b") for _ in range(args.repeats)]
                a, b = statistics.median(alone), statistics.median(batched)
                what = f"{args.run_group} {seeds} seeds x {args.epochs} epochs"
                print(f"{what}: one at a time {a:.2f} s, batched {b:.2f} s, {a / b:.2f}x")
        return
    setup = f"batch {BATCH}, dropout {args.dropout}, {args.steps} steps, median of {args.repeats}"
    print(f"torch {torch.__version__}, {args.threads} thread(s), {setup}")
    print(f"{'case':24} {'MFLOP/step':>10} {'k':>3} {'alone s':>9} {'batched s':>9} {'speedup':>8}")
    for label, kind, arch, params, shape, classes in CASES:
        if args.cases and label not in args.cases:
            continue
        info = DataInfo(kind, shape, classes)
        flops = forward_flops(arch, info, params, BATCH) / 1e6
        for k in args.ks:
            torch.manual_seed(0)
            models = [build_model(arch, info, args.dropout, params).train() for _ in range(k)]
            x = torch.rand(k, args.steps, BATCH, *shape)
            y = torch.randint(0, classes, (k, args.steps, BATCH))
            alone, batched = [], []
            for _ in range(args.repeats):
                alone.append(time_alone([copy.deepcopy(m) for m in models], x, y, args.steps))
                batched.append(time_batched([copy.deepcopy(m) for m in models], x, y, args.steps))
            a, b = statistics.median(alone), statistics.median(batched)
            print(f"{label:24} {flops:10.1f} {k:3d} {a:9.4f} {b:9.4f} {a / b:8.2f}")


if __name__ == "__main__":
    main()

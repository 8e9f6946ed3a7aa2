"""Training throughput of kdtune's models: examples per second through forward, loss and backward.

Uses the real data path (tensors on the device, batch slices) on the embedded data sets, so it runs
anywhere. Usage: python bench/train_throughput.py [--device cpu|cuda] [--threads N] [--steps 30]
"""

from __future__ import annotations

import argparse
import time

import torch

from kdtune.spec.sweepfile import freeze
from kdtune.train.data import DATASETS, DataSpec, load_data
from kdtune.train.distill import LossSpec
from kdtune.train.models import build_model
from kdtune.train.tasks import batch_inputs, task_for

CASES = [
    ("digits", {}, "cnn", {"channels": (32, 32, 64)}, 128),
    ("digits", {}, "mlp", {"hidden": (512, 256)}, 128),
    ("agreement_synthetic", {}, "lstm", {"embedding_dim": 256, "hidden_size": 256, "num_layers": 2}, 64),
    ("agreement_synthetic", {}, "transformer", {"d_model": 128, "n_heads": 8, "n_layers": 6}, 64),
    ("agreement_synthetic", {}, "universal_transformer_seq", {"d_model": 256, "n_heads": 8, "n_layers": 6}, 64),
    ("agreement_synthetic", {"objective": "language_model"}, "transformer_lm", {"d_model": 256, "n_layers": 6}, 64),
]


def measure(device: str, steps: int) -> None:
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for data_name, data_params, arch, params, bs in CASES:
        evals = tuple(DATASETS.get(data_name).default_eval_sets.values())
        data = load_data(DataSpec(data_name, freeze(data_params), eval_sets=evals), None, device)
        task = task_for(data.info)
        model = build_model(arch, data.info, 0.0, params).to(device)
        opt = torch.optim.Adam(model.parameters())
        gen = torch.Generator(device=device).manual_seed(0)
        loss_spec = LossSpec()
        times = []
        for step in range(steps + 5):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            idx = torch.randint(0, len(data.train), (bs,), generator=gen, device=device)
            x = batch_inputs(data.train.x, idx)
            logits, _ = task.outputs(model, x)
            loss = task.train_loss(logits, data.train, idx, x, None, loss_spec, 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 5:  # warm-up excluded
                times.append(time.perf_counter() - t)
        per_step = sorted(times)[len(times) // 2]
        print(f"  {arch:27s} on {data_name:20s} batch {bs:4d}: {bs / per_step:9.0f} examples/s ({per_step * 1000:.1f} ms/step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measure(args.device, args.steps)


if __name__ == "__main__":
    main()

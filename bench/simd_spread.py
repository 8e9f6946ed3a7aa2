"""How far a sweep's table moves across x86-64 CPUs: the same sweep under three sets of SIMD kernels.

PyTorch's CPU build picks its kernels by what the CPU offers (AVX-512, AVX2 or none of them), and so do
oneDNN's convolutions; the kernels add in different orders, and training can amplify the rounding. This runs
``kdtune run SWEEP`` three times into fresh run folders: with the machine's own kernels, with the AVX2 ones
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``) and with the baseline ones (``ATEN_CPU_CAPABILITY=default
ONEDNN_MAX_CPU_ISA=SSE41``), which is what a machine without AVX-512 (or without AVX2) runs. It prints the
kernels each run used, its wall time, and per metric the report's table of how far each cell's mean moved
from the machine's own (``Δ AVX2 / Δ baseline``), each row's largest move, and the largest move in standard
errors of the difference of two means of n seeds (σ pooled over the teacher columns, as tests/test_readme.py
holds the README to).

Usage: python bench/simd_spread.py [--sweep sweeps/quickstart.yaml] [--metric accuracy --metric ece]
       [--keep DIR] (an existing DIR/<kernels> run folder is reported, not trained again)
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# name → the environment that makes this machine run the kernels of such a CPU (empty: its own)
KERNELS = {
    "own": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
KEYS = ["metric", "student", "eval_set", "teacher"]
PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def environment(kernels: str) -> dict[str, str]:
    """This process's environment with the kernel settings of ``kernels`` (the machine's own: none of them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    return env | KERNELS[kernels]


def cpu_model() -> str:
    """The CPU's model name as Linux reports it (else platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(kernels: str, sweep: Path, out: Path, metrics: list[str]) -> tuple[pd.DataFrame, float | None, str]:
    """Cells (mean, std, n per metric, student, eval set, teacher) of ``sweep`` run into ``out`` with
    ``kernels``, the wall seconds of the run (None where ``out`` was there already) and ATen's capability."""
    env = environment(kernels)
    kdtune = [sys.executable, "-m", "kdtune"]
    capability = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    wall = None
    if not out.exists():
        start = time.perf_counter()
        done = subprocess.run([*kdtune, "run", str(sweep), "--out", str(out)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"simd_spread: kdtune run with {kernels} kernels failed:\n{done.stderr[-2000:]}")
    flags = [f for m in metrics for f in ("--metric", m)]
    report = subprocess.run([*kdtune, "report", str(out), "--format", "csv", *flags], capture_output=True, text=True)
    if report.returncode != 0:
        sys.exit(f"simd_spread: kdtune report {out} failed:\n{report.stderr[-2000:]}")
    cells = pd.read_csv(io.StringIO(report.stdout)).set_index(KEYS)[["mean", "std", "n"]]
    return cells, wall, capability.stdout.strip()


def movement(cells: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per cell: each other kernel set's mean minus the machine's own, and that in standard errors of the
    difference of two means of n seeds, σ pooled over the cells of one metric, student and eval set."""
    own = cells["own"]
    out = own[["mean", "n"]].copy()
    for name in cells:
        if name == "own":
            continue
        other = cells[name].loc[own.index]
        var = ((own["std"] ** 2 + other["std"] ** 2) / 2).groupby(level=["metric", "student", "eval_set"]).transform("mean")
        out[f"d_{name}"] = other["mean"] - own["mean"]
        out[f"se_{name}"] = (out[f"d_{name}"].abs() / (var * 2 / own["n"]) ** 0.5).where(var > 0)
    return out


def tables(moved: pd.DataFrame, others: list[str], digits: int = 4) -> str:
    """Markdown: per metric, rows students, columns eval set / teacher, cells ``Δ other / Δ other …``."""
    lines = []
    for metric, m in moved.groupby(level="metric", sort=False):
        m = m.droplevel("metric")
        columns = list(dict.fromkeys((e, t) for _, e, t in m.index))
        students = list(dict.fromkeys(s for s, _, _ in m.index))
        lines += ["", f"{metric}: Δ mean against the machine's own kernels ({' / '.join(others)})", ""]
        lines.append("| student | " + " | ".join(f"{e} / {t}" for e, t in columns) + " | largest move |")
        lines.append("|---|" + ":-:|" * (len(columns) + 1))
        for s in students:
            row = [
                " / ".join(f"{round(m.loc[(s, e, t), f'd_{o}'], digits) + 0.0:+.{digits}f}" for o in others) for e, t in columns
            ]
            largest = max(m.xs(s, level="student")[f"d_{o}"].abs().max() for o in others)
            lines.append(f"| {s} | " + " | ".join(row) + f" | {largest:.{digits}f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="sweeps/quickstart.yaml", help="the sweep file (default: the quickstart)")
    parser.add_argument("--metric", action="append", help="a metric to compare (repeatable; default accuracy and ece)")
    parser.add_argument("--keep", help="keep the run folders under DIR/<kernels>; one already there is reused")
    args = parser.parse_args(argv)
    sweep = Path(args.sweep)
    if not sweep.is_file():
        parser.error(f"--sweep {args.sweep}: no such file")
    metrics = args.metric or ["accuracy", "ece"]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kdtune-simd-"))
    print(f"$ {shlex.join(['python', 'bench/simd_spread.py', *(sys.argv[1:] if argv is None else argv)])}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; run folders under {work}")
    cells, walls = {}, {}
    for name in KERNELS:
        cells[name], walls[name], capability = run(name, sweep, work / name, metrics)
        setting = " ".join(f"{k}={v}" for k, v in KERNELS[name].items()) or "(no setting)"
        took = f"{walls[name]:.1f} s" if walls[name] is not None else "reused"
        print(f"  {name}: ATen capability {capability}, {setting}: {took}", flush=True)
    moved = movement(cells)
    others = [k for k in KERNELS if k != "own"]
    print(tables(moved, others))
    print()
    for o in others:
        worst = moved[f"se_{o}"].idxmax()
        print(
            f"{o}: {int((moved[f'd_{o}'].abs() > 5e-7).sum())} of {len(moved)} cell means moved by more than 5e-7; "
            f"the largest in standard errors of the difference: {moved.loc[worst, f'se_{o}']:.2f} ({' '.join(worst)})"
        )


if __name__ == "__main__":
    main()

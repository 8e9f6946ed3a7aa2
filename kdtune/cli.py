"""The ``kdtune`` command: ``run`` a sweep, ``plan`` it without training, ``report`` its results.

Wrong input (sweep file, flags, data folder, run folder) ends with one line on stderr and exit
status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kdtune.errors import KdtuneError

if TYPE_CHECKING:
    import pandas as pd

    from kdtune.spec import ReportSpec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise KdtuneError(f"{self.prog}: {message}")


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _digits(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


METRICS = ("accuracy", "nll", "ece", "agreement", "kl", "d_accuracy", "a_accuracy", "perplexity", "token_nll")


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="the sweep file (YAML)")
    p.add_argument("--data-dir", help="data folder (e.g. the one holding MNIST/raw); overrides data.root")
    p.add_argument("--out", help="run folder (default: the sweep's output, runs/<name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a sweep field, e.g. --set train.epochs=3 (repeatable; VALUE is YAML)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kdtune``."""
    parser = _Parser(prog="kdtune", description="Knowledge-distillation sweeps on Ray Tune.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a sweep: teachers, then students; then print the report")
    _add_sweep_args(run)
    run.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="join this Ray cluster (e.g. auto or ray://head:10001; default: $RAY_ADDRESS) "
        "instead of starting a fresh local instance",
    )
    run.add_argument(
        "--executor",
        choices=("ray", "inline"),
        default="ray",
        help="ray (default): Ray Tune; inline: one trial after another in this process, for debugging",
    )
    run.add_argument(
        "--metric", action="append", choices=METRICS, help="metric(s) of the printed report (default: the sweep's report)"
    )
    run.add_argument("--no-report", action="store_true", help="do not print the report at the end")

    plan = sub.add_parser("plan", help="validate a sweep and show its trials and stages without training")
    _add_sweep_args(plan)

    rep = sub.add_parser("report", help="mean ± std tables of a finished run folder")
    rep.add_argument("run_dir", help="a run folder written by kdtune run (e.g. runs/quickstart)")
    rep.add_argument("--format", choices=("markdown", "latex", "csv"), default="markdown")
    rep.add_argument("--metric", action="append", choices=METRICS, help="a metric to tabulate (repeatable)")
    rep.add_argument("--rows", type=_csv, help="comma-separated row keys (default: the sweep's report.rows, else student)")
    rep.add_argument("--cols", type=_csv, help="comma-separated column keys (default: report.cols, else eval_set,teacher)")
    rep.add_argument("--eval-sets", type=_csv, help="eval sets to show (default: report.eval_sets, else all but val)")
    rep.add_argument("--digits", type=_digits, help="decimals (default 3)")
    rep.add_argument("--output", "-o", help="write to this file instead of standard output")

    dl = sub.add_parser("download", help="fetch a data set that needs files (uses the optional torchvision extra)")
    dl.add_argument("dataset", choices=("mnist",))
    dl.add_argument("--data-dir", required=True, help="where to put it (torchvision layout)")
    return parser


def _load(args: argparse.Namespace):
    from kdtune.data import load_data
    from kdtune.plan import make_plan
    from kdtune.spec import load_sweep

    spec = load_sweep(args.sweep, args.overrides, data_root=args.data_dir, output=args.out)
    # Load the data once here (each source checks its files first): a missing file, a malformed line
    # or an impossible split stops the run before any work.
    try:
        load_data(spec.data, spec.data_root)
    except ValueError as e:
        raise KdtuneError(f"{args.sweep}: data: {e}") from None
    return make_plan(spec)


def _cmd_plan(args: argparse.Namespace) -> int:
    plan = _load(args)
    print(f"sweep {plan.spec.name}: {len(plan.trials)} trials in {len(plan.stages)} stages → {plan.spec.output}")
    from kdtune.rundir import is_finished

    for k, stage in enumerate(plan.stages, 1):
        n = sum(len(g.trials) for g in stage)
        done = sum(is_finished(plan.spec.output, t.id) for g in stage for t in g.trials)
        print(f"stage {k}: {n} trials in {len(stage)} groups, {done} already finished")
        for g in stage:
            t = g.trials[0]
            loss = t.config.loss
            kd = f" τ={loss.temperature:g} w_hard={loss.w_hard:g} w_soft={loss.w_soft:g}" if loss.distills else ""
            seeds = ",".join(str(x.seed) for x in g.trials)
            teachers = "" if not loss.distills else " ← " + ",".join(x.config.teacher_id[:8] for x in g.trials)  # type: ignore[index]
            print(f"  {g.name}: seeds {seeds}{kd}{teachers}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    plan = _load(args)
    from kdtune.execute import InlineExecutor, RayExecutor, execute
    from kdtune.report import render
    from kdtune.results import collect, write_results, write_sweep_record

    spec = plan.spec
    print(f"sweep {spec.name}: {len(plan.trials)} trials in {len(plan.stages)} stages → {spec.output}")
    write_sweep_record(plan)
    if args.executor == "inline":
        executor: InlineExecutor | RayExecutor = InlineExecutor()
    else:
        executor = RayExecutor(
            args.address,
            spec.resources.cpu,
            spec.resources.gpu,
            spec.execution.max_concurrent_trials,
            spec.execution.max_failures,
            spec.output / "ray",
        )
    failures = execute(plan, executor)
    df = collect(plan, failures)
    path = write_results(plan, df)
    print(f"results: {path} ({len(df)} rows)")
    if failures:
        print(f"{len(failures)} trials did not finish:", file=sys.stderr)
        for tid, err in list(failures.items())[:10]:
            print(f"  {tid}: {err}", file=sys.stderr)
        if args.executor == "ray":
            print(f"  full tracebacks: {spec.output / 'ray'}/stage*/<trial>/error.txt", file=sys.stderr)
    if not args.no_report and (df["status"] == "ok").any():
        r = spec.report
        print()
        print(render(df, _metrics(df, args.metric, r.metrics), "markdown", r.rows, r.cols, r.eval_sets, r.digits))
    return 1 if failures else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kdtune.report import render
    from kdtune.results import read_results

    df = read_results(args.run_dir)
    r = report_defaults(Path(args.run_dir))
    text = render(
        df,
        _metrics(df, args.metric, r.metrics),
        args.format,
        args.rows or r.rows,
        args.cols or r.cols,
        args.eval_sets or r.eval_sets,
        r.digits if args.digits is None else args.digits,
    )
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            raise KdtuneError(f"{args.output}: cannot write the report ({e.strerror})") from None
    else:
        sys.stdout.write(text)
    return 0


def _metrics(df: pd.DataFrame, asked: Sequence[str] | None, defaults: Sequence[str]) -> list[str]:
    """The metrics to report: those asked for on the command line, else the sweep's defaults that
    these results have (e.g. no d_accuracy for data without distances), with a note on the others."""
    if asked:
        return list(asked)
    have = [m for m in defaults if m in df.columns and df[m].notna().any()]
    missing = [m for m in defaults if m not in have]
    if missing:
        print(f"note: no {', '.join(missing)} in these results; reporting {', '.join(have) or 'nothing'}", file=sys.stderr)
    if not have:
        raise KdtuneError(f"none of the report's metrics ({', '.join(defaults)}) is in these results; pick one with --metric")
    return have


def report_defaults(run_dir: Path) -> ReportSpec:
    """The ``report`` section of the sweep recorded in a run folder (built-in defaults without one)."""
    import yaml

    from kdtune.spec import ReportSpec, parse_report

    path = run_dir / "sweep.yaml"
    if not path.is_file():
        return ReportSpec()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise KdtuneError(f"{path}: cannot read the recorded sweep ({type(e).__name__})") from None
    return parse_report(raw.get("report") if isinstance(raw, dict) else None, str(path))


def _cmd_download(args: argparse.Namespace) -> int:
    from kdtune.data.mnist import download_mnist

    print(f"MNIST in {download_mnist(Path(args.data_dir))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtune`` console script."""
    try:
        args = build_parser().parse_args(argv)
        return {"run": _cmd_run, "plan": _cmd_plan, "report": _cmd_report, "download": _cmd_download}[args.command](args)
    except KdtuneError as e:
        print(f"kdtune: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:  # Ctrl-C; during a run, kdtune.execute.Interrupted once Ray is shut down
        with contextlib.suppress(ValueError):  # (not in the main thread)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting: no traceback
        finished, total = getattr(e, "finished", None), getattr(e, "total", None)
        if finished is None:
            print("kdtune: interrupted", file=sys.stderr)
            return 130
        words = sys.argv[1:] if argv is None else list(argv)
        prog = "python -m kdtune" if argv is None and sys.argv[0].endswith("__main__.py") else "kdtune"
        print(
            f"kdtune: interrupted; {finished} of {total} trials finished and are kept. "
            f"Resume with the same command: {prog} {shlex.join(words)}",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

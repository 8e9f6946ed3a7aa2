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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from kdtune import app
from kdtune.errors import KdtuneError
from kdtune.labels import BOLD, CORRECTIONS, FORMATS, INTERVALS, METRICS, TESTS


class _UsageError(KdtuneError):
    """A wrong command line: ``main`` prints the usage of the (sub)command, then the one-line error."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Raise instead of exiting, so that ``main`` prints ``kdtune: error: ...`` once (after the usage)."""
        raise _UsageError(message, self.format_usage())


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _whole(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``least``."""

    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}")
        return int(text)

    return parse


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


def _add_tracker_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help=f"log {what} to the MLflow tracking server or store at URI, e.g. http://127.0.0.1:5000 "
        "(overrides outputs.mlflow.tracking_uri; needs kdtune[mlflow])",
    )
    p.add_argument(
        "--wandb",
        metavar="PROJECT",
        help=f"log {what} to this Weights & Biases project (overrides outputs.wandb.project; needs kdtune[wandb]; "
        "offline with WANDB_MODE=offline)",
    )


def _add_address(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None, help=help)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kdtune``."""
    parser = _Parser(prog="kdtune", description="Knowledge-distillation sweeps on Ray Tune.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a sweep: teachers, then students; then print the report")
    _add_sweep_args(run)
    _add_address(
        run,
        "join this Ray cluster (e.g. auto or ray://head:10001; default: $RAY_ADDRESS) instead of starting a fresh local instance",
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
    run.add_argument(
        "--tensorboard",
        action="store_true",
        help="write each trial's per-epoch curves to RUN/tensorboard/ (as execution.tensorboard: true; ids unchanged)",
    )
    _add_tracker_args(run, "every trial (one run per trial, per epoch and final metrics)")

    tun = sub.add_parser("tune", help="tune one model's (or one teacher → student pair's) settings with Optuna on Ray Tune")
    _add_sweep_args(tun)
    tun.add_argument("--model", required=True, help="the model to tune (a label of the sweep's models)")
    tun.add_argument("--teacher", default="data", help="tune the model as this teacher's student (τ, w_hard, w_soft too)")
    tun.add_argument("--trials", type=_whole(1), default=20, help="search trials the study should end with (default 20)")
    tun.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: SQLite in the run folder)")
    _add_address(tun, "join this Ray cluster (default: $RAY_ADDRESS, else a fresh local instance)")
    _add_tracker_args(tun, "every search trial (its sampled values and objective; the best one tagged)")

    plan = sub.add_parser("plan", help="validate a sweep and show its trials and stages without training")
    _add_sweep_args(plan)

    rep = sub.add_parser("report", help="mean ± std tables of one or more run folders (finished trials so far)")
    rep.add_argument("run_dir", nargs="+", help="run folder(s) written by kdtune run (e.g. runs/quickstart); several are merged")
    rep.add_argument("--sweep", help="only this sweep recorded in the run folder (default: every sweep run into it)")
    rep.add_argument("--tuning", action="store_true", help="the tuning studies: best search trials, importances, figures")
    rep.add_argument("--storage", help="with --tuning: the Optuna storage URL (default: SQLite in the run folder)")
    rep.add_argument("--format", choices=FORMATS, default="markdown")
    rep.add_argument("--metric", action="append", choices=METRICS, help="a metric to tabulate (repeatable)")
    rep.add_argument("--rows", type=_csv, help="comma-separated row keys (default: the sweep's report.rows, else student)")
    rep.add_argument("--cols", type=_csv, help="comma-separated column keys (default: report.cols, else eval_set,teacher)")
    rep.add_argument("--eval-sets", type=_csv, help="eval sets to show (default: report.eval_sets, else all but val)")
    rep.add_argument("--digits", type=_whole(0), help="decimals (default 3)")
    rep.add_argument(
        "--interval",
        choices=INTERVALS,
        help="what ± shows: std, standard error or t-based 95%% interval of the mean, ddof 1 (default: report.interval, std)",
    )
    rep.add_argument(
        "--compare",
        metavar="KEY=VALUE",
        help="compare every cell with the cell of this column key's value sharing its other keys, e.g. teacher=data; "
        "▲/▼ where significantly higher/lower (the CSV has diff, diff_lo, diff_hi, p, p_adjusted, test, n_pairs)",
    )
    rep.add_argument(
        "--test",
        choices=TESTS,
        help="test of --compare and --bold significant: auto (default) is the paired t-test where two cells' models share "
        "their random streams (fold, init_seed, data_seed), else Welch's; paired refuses an unpaired design",
    )
    rep.add_argument("--correction", choices=CORRECTIONS, help="over all comparisons of a table (default holm)")
    rep.add_argument("--alpha", type=float, help="significance level (default 0.05)")
    rep.add_argument(
        "--bold",
        choices=BOLD,
        help="best: bold the best mean of each column, underline the second; significant: bold the best cell and every "
        "cell not significantly worse (where the test can decide at the table's n; the note says where it cannot)",
    )
    rep.add_argument(
        "--percent", action="store_true", help="fractions (accuracy, ece, agreement) as percentages: 97.4, not 0.974"
    )
    rep.add_argument(
        "--n-once",
        action="store_true",
        help="the number of units (n) once in the title (LaTeX: the caption), in a cell only where it differs",
    )
    rep.add_argument("--small-pm", action="store_true", help="with --format latex: the ± part of a cell in \\scriptsize")
    rep.add_argument(
        "--textwidth",
        type=float,
        default=345.0,
        metavar="PT",
        help="with --format latex: the width a table must fit, in pt (default 345: the article class at 10 pt; "
        "505 for a two-column page's table*, 241 for one column); column keys move to the rows until it does",
    )
    rep.add_argument("--seed", type=int, help="seed of --test bootstrap and permutation (default 0)")
    rep.add_argument(
        "--reference",
        action="append",
        metavar="FILE:TABLE",
        help="a published table to check the run against, e.g. abnar2021:table6 (repeatable): the paper's cells beside "
        "kdtune's and every claim of the table with its verdict (FILE: a shipped reference or a .yaml path)",
    )
    rep.add_argument("--output", "-o", help="write to this file instead of standard output")
    rep.add_argument(
        "--mlflow",
        metavar="URI",
        help="also log the tables (Markdown, CSV, LaTeX) and, after kdtune analyze, the figures and page to the "
        "sweep's summary run at this MLflow URI (default: the sweep's outputs.mlflow, if any)",
    )

    sd = sub.add_parser(
        "study",
        help="a case study whole: run its sweeps, its analyses, check it against the paper; write RUN/report.md and a page",
    )
    sd.add_argument("study", help="the study file (YAML), e.g. studies/abnar2021_mnist_cpu.yaml")
    sd.add_argument("--data-dir", help="data folder for every sweep and analysis; overrides each sweep's data.root")
    sd.add_argument("--out", help="run folder (default: the study's out, else runs/<name>)")
    _add_address(sd, "join this Ray cluster (as kdtune run)")
    sd.add_argument("--executor", choices=("ray", "inline"), default="ray", help="as kdtune run --executor")
    sd.add_argument(
        "--report-only", action="store_true", help="train and analyse nothing: write the report from what the run folder holds"
    )
    sd.add_argument("--dry-run", action="store_true", help="check the study and show what it would do, then stop")
    sd.add_argument(
        "--export",
        metavar="DIR",
        help="also copy the report to DIR/<name>.md with its figures in DIR/<name>/ (e.g. docs/results)",
    )

    st = sub.add_parser("status", help="what a run folder holds: finished, failed, running, pending (read-only)")
    st.add_argument("run_dir", help="a run folder written by kdtune run")
    st.add_argument("--sweep", help="only this sweep recorded in the run folder")
    st.add_argument("--trials", action="store_true", help="also list every finished trial with the node and host that ran it")

    an = sub.add_parser("analyze", help="figures and tables across a run folder's finished trials, and one HTML page")
    an.add_argument("run_dir", help="a run folder written by kdtune run; writes only under RUN/analysis/")
    an.add_argument("--only", type=_csv, help="comma-separated analyses to run, e.g. similarity,barriers (default: all)")
    an.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="only trials whose results column KEY is one of V1,V2, e.g. student=MLP (repeatable; all must hold)",
    )
    an.add_argument("--eval-set", action="append", type=_csv, help="eval set(s) to analyse (repeatable; default: all but val)")
    an.add_argument("--data-dir", help="data folder the trials were trained on (for analyses that read the data)")
    an.add_argument("--sweep", help="only this sweep recorded in the run folder (default: every sweep run into it)")

    dl = sub.add_parser("download", help="fetch a data set that needs files (uses the optional torchvision extra)")
    dl.add_argument("dataset", choices=("mnist",))
    dl.add_argument("--data-dir", required=True, help="where to put it (torchvision layout)")

    sc = sub.add_parser("schema", help="print the JSON Schema of sweep files (shipped as kdtune/sweep.schema.json)")
    sc.add_argument(
        "--markdown",
        action="store_true",
        help="print the sweep-file reference instead: every field's type, default and description, as Markdown "
        "(kdtune schema --markdown > docs/sweep-reference.md)",
    )
    return parser


def _sweep(args: argparse.Namespace) -> app.SweepInput:
    return app.SweepInput(args.sweep, args.overrides, args.data_dir, args.out)


def _call(args: argparse.Namespace, words: Sequence[str]) -> int:
    """The use case of ``args.command`` (:mod:`kdtune.app`) called with the parsed flags; its exit status."""
    match args.command:
        case "plan":
            return app.show_plan(_sweep(args))
        case "run":
            return app.run_sweep(
                _sweep(args), executor=args.executor, address=args.address, metrics=args.metric, report=not args.no_report,
                tensorboard=args.tensorboard, mlflow=args.mlflow, wandb=args.wandb, command=words,
            )  # fmt: skip
        case "tune":
            return app.tune(
                _sweep(args), model=args.model, teacher=args.teacher, trials=args.trials, storage=args.storage,
                address=args.address, mlflow=args.mlflow, wandb=args.wandb,
            )  # fmt: skip
        case "report" if args.tuning:
            return app.report_tuning(args.run_dir, storage=args.storage, fmt=args.format, digits=args.digits, output=args.output)
        case "report":
            from kdtune.results.tables import Look

            names = ("interval", "compare", "test", "correction", "alpha", "bold", "seed")
            return app.report(
                args.run_dir, sweep=args.sweep, fmt=args.format, metrics=args.metric, rows=args.rows, cols=args.cols,
                eval_sets=args.eval_sets, digits=args.digits, statistics={n: getattr(args, n) for n in names},
                look=Look(args.percent, args.n_once, args.small_pm, args.textwidth), references=args.reference or (),
                output=args.output, mlflow=args.mlflow,
            )  # fmt: skip
        case "analyze":
            return app.analyse(
                args.run_dir, only=args.only, where=app.parse_where(args.where),
                eval_sets=[e for group in args.eval_set or [] for e in group], data_dir=args.data_dir, sweep=args.sweep,
            )  # fmt: skip
        case "study":
            return app.study(
                args.study, out=args.out, data_dir=args.data_dir, address=args.address, executor=args.executor,
                report_only=args.report_only, dry_run=args.dry_run, export=args.export, command=words,
            )  # fmt: skip
        case "status":
            sys.stdout.write(app.status(args.run_dir, args.sweep, args.trials))
        case "download":
            from kdtune.train.data.mnist import download_mnist

            print(f"MNIST in {download_mnist(Path(args.data_dir))}")
        case "schema" if args.markdown:
            from kdtune.spec.docpage import sweep_reference_markdown

            sys.stdout.write(sweep_reference_markdown())
        case "schema":
            from kdtune.spec.sweepfile import schema_text

            sys.stdout.write(schema_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtune`` console script."""
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        return _call(build_parser().parse_args(words), words)
    except KdtuneError as e:
        if isinstance(e, _UsageError):
            sys.stderr.write(e.usage)
        for line in str(e).splitlines() or [""]:  # several mistakes of a sweep file: one line each
            print(f"kdtune: error: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:  # Ctrl-C; during a run, kdtune.run.execute.Interrupted once Ray is shut down
        with contextlib.suppress(ValueError):  # (not in the main thread)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting: no traceback
        finished, total = getattr(e, "finished", None), getattr(e, "total", None)
        if finished is None:
            print("kdtune: interrupted", file=sys.stderr)
            return 130
        prog = "python -m kdtune" if argv is None and sys.argv[0].endswith("__main__.py") else "kdtune"
        kept, resume = f"{finished} of {total} trials finished and are kept", f"{prog} {shlex.join(words)}"
        reason = getattr(e, "reason", None)  # kdtune.run.execute.RayDied: the Ray instance died under the run
        if reason is None:
            print(f"kdtune: interrupted; {kept}. Resume with the same command: {resume}", file=sys.stderr)
            return 130
        if reason.startswith("out of memory"):
            print(
                f"kdtune: the run stopped, {reason} (the node's memory ran out; another process may hold it); {kept}; "
                f"free memory, or run fewer trials at once (execution.max_concurrent_trials), and resume with: {resume}",
                file=sys.stderr,
            )
        else:
            print(f"kdtune: the Ray instance died ({reason}); {kept}; resume with: {resume}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

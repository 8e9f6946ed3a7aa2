"""The ``kdtune`` command: ``run`` a sweep, ``plan`` it without training, ``report`` its results.

Wrong input (sweep file, flags, data folder, run folder) ends with one line on stderr and exit
status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kdtune.errors import KdtuneError
from kdtune.labels import BOLD, CORRECTIONS, FORMATS, INTERVALS, METRICS, TESTS

if TYPE_CHECKING:
    import pandas as pd

    from kdtune.execute import InlineExecutor, RayExecutor
    from kdtune.plan import Plan
    from kdtune.reference import RefTable
    from kdtune.report import ReportSpec


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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _digits(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


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
    tun.add_argument("--trials", type=_positive, default=20, help="search trials the study should end with (default 20)")
    tun.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: SQLite in the run folder)")
    tun.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="join this Ray cluster (default: $RAY_ADDRESS, else a fresh local instance)",
    )
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
    rep.add_argument("--digits", type=_digits, help="decimals (default 3)")
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
    sd.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None, help="join this Ray cluster (as kdtune run)")
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


def _load(args: argparse.Namespace):
    from kdtune.data import load_data
    from kdtune.plan import make_plan
    from kdtune.spec import load_sweep, sweep_warnings

    spec = load_sweep(args.sweep, args.overrides, data_root=args.data_dir, output=args.out)
    if args.command == "run":
        from kdtune.rundir import check_out_dir

        check_out_dir(spec.output)  # before loading any data
        spec = _trackers(spec, args)
    # Load the data once here (each source checks its files first): a missing file, a malformed line
    # or an impossible split stops the run before any work.
    try:
        load_data(spec.data, spec.data_root)
    except ValueError as e:
        raise KdtuneError(f"{args.sweep}: data: {e}") from None
    plan = make_plan(spec)
    for warning in sweep_warnings(spec):  # valid but likely unintended settings; the run goes on
        print(f"kdtune: warning: {warning}", file=sys.stderr)
    return plan


def _trackers(spec: Any, args: argparse.Namespace) -> Any:
    """The sweep with ``--mlflow``/``--wandb`` put in, its trackers checked (installed, reachable) before any work."""
    mlflow, wandb = getattr(args, "mlflow", None), getattr(args, "wandb", None)
    if mlflow is None and wandb is None and not spec.trackers:
        return spec
    from kdtune.trackers import check_trackers, with_flags

    spec = with_flags(spec, mlflow, wandb)
    check_trackers(spec.trackers, [n for n, v in (("mlflow", mlflow), ("wandb", wandb)) if v is not None])
    return spec


KD_SHOWN = ("temperature", "w_hard", "w_soft")  # a plan line shows these of every student (τ=4 w_hard=0 w_soft=1)


def _cmd_plan(args: argparse.Namespace) -> int:
    from kdtune.execute import plural
    from kdtune.rundir import is_finished

    plan = _load(args)
    from kdtune.ledger import plan_trials
    from kdtune.status import distinguishing

    print(
        f"sweep {plan.spec.name}: {plural(len(plan.trials), 'trial')} in {plural(len(plan.stages), 'stage')} → {plan.spec.output}"
    )
    apart = distinguishing(plan.spec.output, plan_trials(plan))  # e.g. the switch point of a switched student
    from kdtune.plan import stream_design

    print("\n".join(stream_design(plan.spec)["lines"]))  # which conditions share which random streams
    for k, stage in enumerate(plan.stages, 1):
        n = sum(len(g.trials) for g in stage)
        done = sum(is_finished(plan.spec.output, t.id) for g in stage for t in g.trials)
        print(f"stage {k}: {plural(n, 'trial')} in {plural(len(stage), 'group')}, {done} already finished")
        for g in stage:
            t = g.trials[0]
            loss = t.config.loss
            kd = f" τ={loss.temperature:g} w_hard={loss.w_hard:g} w_soft={loss.w_soft:g}" if loss.distills else ""
            seeds = ",".join(str(x.seed) for x in g.trials)
            teachers = "" if not loss.distills else " ← " + ",".join(x.config.teacher_id[:8] for x in g.trials)  # type: ignore[index]
            shown = [s for s in re.split(r", (?=[\w.]+=)", apart[t.id]) if s and s.split("=")[0] not in KD_SHOWN]
            print(f"  {g.name}: seeds {seeds}{kd}{''.join(' ' + s for s in shown)}{teachers}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import shutil

    from kdtune.execute import JoinError, check_join
    from kdtune.rundir import RunLock, init_run_dir, remove_scratch

    plan = _load(args)  # checks --out before loading any data
    spec = plan.spec
    if args.executor == "ray" and args.address:
        check_join(args.address)  # nothing answers, or authentication fails: one line, before the run folder exists
    fresh = not spec.output.exists() or (spec.output.is_dir() and not any(spec.output.iterdir()))
    init_run_dir(spec.output)
    try:
        with RunLock(spec.output):
            remove_scratch(spec.output)  # what a worker killed mid-commit left; no worker of this run has started yet
            return _run_locked(args, plan)
    except JoinError:
        if fresh:  # made by this invocation, and no trial can have started: leave no half-made run folder
            shutil.rmtree(spec.output, ignore_errors=True)
        raise


def _run_locked(args: argparse.Namespace, plan: Plan) -> int:
    import dataclasses

    from kdtune.execute import InlineExecutor, RayExecutor, plural
    from kdtune.ledger import write_sweep_record

    if getattr(args, "tensorboard", False) and not plan.spec.execution.tensorboard:
        execution = dataclasses.replace(plan.spec.execution, tensorboard=True)
        plan = dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, execution=execution))
    spec = plan.spec
    print(f"sweep {spec.name}: {plural(len(plan.trials), 'trial')} in {plural(len(plan.stages), 'stage')} → {spec.output}")
    record = write_sweep_record(plan, sys.argv[1:])
    if args.executor == "inline":
        executor: InlineExecutor | RayExecutor = InlineExecutor()
    else:
        executor = RayExecutor.for_sweep(spec, args.address)
        executor.linger = True  # Ray is shut down after the report is printed (below), not before
    try:
        return _finish_run(args, plan, record, executor)
    finally:
        if isinstance(executor, RayExecutor):
            executor.close()


def _finish_run(args: argparse.Namespace, plan: Plan, record: Path, executor: InlineExecutor | RayExecutor) -> int:
    """Run the plan's trials, write the results table and print the report; the exit status."""
    from kdtune.execute import RayDied, execute, plural
    from kdtune.ledger import collect, record_outcome
    from kdtune.report import render
    from kdtune.results import collect_run, write_results

    spec = plan.spec
    exit_status: int | str = "interrupted"
    failures: dict[str, str] = {}
    try:
        failures = execute(plan, executor)
        exit_status = 1 if failures else 0
    except RayDied as e:
        exit_status = f"ray died: {e.reason}"
        raise
    except KdtuneError:
        exit_status = 2
        raise
    finally:
        record_outcome(record, failures, exit_status)
        union = collect_run(spec.output)
        path = write_results(spec.output, union)
    n_sweeps = union["sweep"].str.split(",").explode().nunique()
    print(f"results: {path} ({plural(union['trial_id'].nunique(), 'trial')} of {plural(n_sweeps, 'sweep')} run into this folder)")
    df = collect(plan, failures)
    if failures:
        print(f"{plural(len(failures), 'trial')} did not finish:", file=sys.stderr)
        for tid, err in list(failures.items())[:10]:
            print(f"  {tid}: {err}", file=sys.stderr)
        if len(failures) > 10:
            print(f"  … and {len(failures) - 10} more (kdtune status {spec.output})", file=sys.stderr)
    if not args.no_report and (df["status"] == "ok").any():
        r = spec.report
        print()
        stat = report_stats(r)
        print(render(df, _metrics(df, args.metric, r.metrics), "markdown", r.rows, r.cols, r.eval_sets, r.digits, stat))
    return 1 if failures else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kdtune.execute import plural
    from kdtune.report import Look, render
    from kdtune.results import collect_runs, load_records, record_labels, select_records

    if args.tuning:
        return _report_tuning(args)

    from kdtune.report import parse_compare
    from kdtune.stats import check_alpha

    if args.alpha is not None:
        check_alpha(args.alpha)
    if args.compare is not None:
        parse_compare(args.compare)  # before reading the run folders
    from kdtune.reference import resolve_target

    targets = [resolve_target(t) for t in args.reference or []]  # every file and claim checked first
    tracker = _report_tracker(args)  # installed and answering, before any table is made
    df, notes = collect_runs(args.run_dir, args.sweep)
    for d in args.run_dir:
        records = select_records(d, args.sweep)
        if len(records) > 1 or len(args.run_dir) > 1:
            labels = record_labels(load_records(d))  # the sweeps as their users named them
            which = ", ".join(f"{labels[r.name]} ({plural(len(r.trials), 'trial')})" for r in records)
            scope = "union of" if len(records) > 1 else "sweep"
            print(f"{d}: {scope} {which}" + ("; --sweep NAME for one" if len(records) > 1 else ""), file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    r = report_defaults(Path(args.run_dir[0]), args.sweep)
    if targets:
        _write_report(_reference_report(df, Path(args.run_dir[0]), targets, args, r), args.output)
        return 0
    metrics = _metrics(df, args.metric, r.metrics)
    name = "-".join(re.sub(r"[^A-Za-z0-9]+", "-", Path(d).resolve().name) for d in args.run_dir)

    def table(fmt: str) -> str:
        return render(
            df,
            metrics,
            fmt,
            args.rows or r.rows,
            args.cols or r.cols,
            args.eval_sets or r.eval_sets,
            r.digits if args.digits is None else args.digits,
            report_stats(r, args),
            Look(args.percent, args.n_once, args.small_pm, args.textwidth),
            name,
        )

    _write_report(table(args.format), args.output)
    if tracker is not None:
        from kdtune.trackers import log_report

        m, sweep, tags = tracker
        files = {"report.md": table("markdown"), "report.csv": table("csv"), "report.tex": table("latex")}
        run_id, logged = log_report(m, Path(args.run_dir[0]), sweep, files, tags)
        where = f"run {run_id} of experiment {m.experiment} at {m.tracking_uri}"
        print(f"mlflow: {len(logged)} artifacts logged to {where}", file=sys.stderr)
    return 0


def _report_tracker(args: argparse.Namespace) -> tuple[Any, str, dict[str, str]] | None:
    """``report --mlflow URI``, else the ``outputs.mlflow`` of the sweep recorded in the run folder: (where, the sweep's
    name, its tags), checked (installed, answering); None when neither asks for MLflow."""
    from kdtune.results import select_records

    record = select_records(args.run_dir[0], args.sweep)[-1]
    outputs = record.raw.get("outputs") if isinstance(record.raw.get("outputs"), dict) else {}
    setting = outputs.get("mlflow") if isinstance(outputs.get("mlflow"), dict) else None
    if args.mlflow is None and setting is None:
        return None
    from kdtune import __version__
    from kdtune.config import RESULTS_VERSION, MlflowSpec, check_tracking_uri
    from kdtune.trackers import check_mlflow, require

    flag = args.mlflow is not None
    uri = args.mlflow if flag else setting.get("tracking_uri")  # type: ignore[union-attr]
    try:
        check_tracking_uri(str(uri))
    except ValueError as e:
        raise KdtuneError(f"{'--mlflow' if flag else 'outputs.mlflow.tracking_uri'} {uri}: {e}") from None
    m = MlflowSpec(str(uri), str((setting or {}).get("experiment") or record.sweep))
    require("mlflow", flag)
    check_mlflow(m, flag)
    tags = {"kdtune.record": record.name, "kdtune.version": __version__, "kdtune.results_version": str(RESULTS_VERSION)}
    return m, record.sweep, tags


def _reference_report(df: pd.DataFrame, run_dir: Path, targets: list[RefTable], args: argparse.Namespace, r: ReportSpec) -> str:
    """``report --reference``: each published table beside the run's cells, and its claims' verdicts."""
    from kdtune.claims import Evidence
    from kdtune.reference import check_tables, render_checks
    from kdtune.report import SETTINGS

    opts = report_stats(r, args)
    interval = args.interval or "ci95"
    evidence = Evidence(df, run_dir, SETTINGS)
    checks = check_tables(  # the tables' claims one family: one test per comparison, Holm once
        targets, evidence, interval=interval, test=opts.test, alpha=opts.alpha, correction=opts.correction, seed=opts.seed
    )
    return render_checks(checks, args.format, opts.alpha, opts.correction)


def report_stats(r: ReportSpec, args: argparse.Namespace | None = None) -> ReportSpec:
    """The statistics of the tables: a flag given on the command line, else the sweep's ``report`` section."""
    names = ("interval", "compare", "test", "correction", "alpha", "bold", "seed")
    given = {n: v for n in names if (v := getattr(args, n, None)) is not None}
    return dataclasses.replace(r, **given).check()


def _report_tuning(args: argparse.Namespace) -> int:
    from kdtune.tuning.report import render_tuning

    if len(args.run_dir) != 1:
        raise KdtuneError("--tuning reports one run folder at a time")
    run_dir = Path(args.run_dir[0])
    if not run_dir.is_dir():
        raise KdtuneError(f"{run_dir}: no such run folder")
    text, figures = render_tuning(run_dir, args.storage, args.format, 4 if args.digits is None else args.digits)
    _write_report(text, args.output)
    if figures:
        print(f"figures: {figures[0].parent} ({', '.join(p.name for p in figures)})", file=sys.stderr)
    return 0


def _write_report(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            raise KdtuneError(f"{output}: cannot write the report ({e.strerror})") from None
        print(f"report written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _cmd_tune(args: argparse.Namespace) -> int:
    from kdtune.execute import RayExecutor, check_join, execute, run_log
    from kdtune.rundir import RunLock, check_out_dir, init_run_dir
    from kdtune.spec import load_sweep
    from kdtune.tuning.search import prepare, run_search

    spec = load_sweep(args.sweep, args.overrides, data_root=args.data_dir, output=args.out)
    check_out_dir(spec.output)
    spec = _trackers(spec, args)
    setup = prepare(spec, args.model, args.teacher)
    if args.storage:  # a wrong URL or a server that does not answer stops here, before any work
        from kdtune.tuning.study import open_storage

        open_storage(args.storage)
    t = spec.tune
    print(
        f"tune {setup.label} on {spec.name}: val {t.metric} ({t.direction}), the mean of {t.seeds} seeds per search trial; "
        + ", ".join(f"{k} {d.describe()}" for k, d in setup.space.params)
        + f" → {spec.output}"
    )
    if args.address:
        check_join(args.address)  # before the run folder exists
    init_run_dir(spec.output)

    with RunLock(spec.output):
        if setup.teachers is not None:
            failures = execute(setup.teachers, RayExecutor.for_sweep(spec, args.address))
            if failures:
                raise KdtuneError(
                    f"{len(failures)} teacher trial(s) of {args.teacher} did not finish: {next(iter(failures.values()))}"
                )
        with run_log(spec.output) as log_path, RayExecutor.for_sweep(spec, args.address) as ray_executor:
            summary = run_search(setup, args.trials, args.storage, ray_executor)
        if summary["counts"]["failed"]:
            print(f"log with the full tracebacks: {log_path}")
    return 0 if summary["best"] is not None and summary["counts"]["finished"] >= args.trials else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from kdtune.status import run_status

    sys.stdout.write(run_status(Path(args.run_dir), args.sweep, args.trials))
    return 0


def _metrics(df: pd.DataFrame, asked: Sequence[str] | None, defaults: Sequence[str]) -> list[str]:
    """The metrics to report: those asked for on the command line, else the sweep's defaults that
    these results have (e.g. no d_accuracy for data without distances), with a note on the others."""
    if asked:
        return list(asked)
    nothing_finished = not (df["status"] == "ok").any()  # still a table: every cell says what failed
    have = [m for m in defaults if m in df.columns and (df[m].notna().any() or nothing_finished)]
    missing = [m for m in defaults if m not in have]
    if missing:
        print(f"note: no {', '.join(missing)} in these results; reporting {', '.join(have) or 'nothing'}", file=sys.stderr)
    if not have:
        raise KdtuneError(f"none of the report's metrics ({', '.join(defaults)}) is in these results; pick one with --metric")
    return have


def report_defaults(run_dir: Path, sweep: str | None = None) -> ReportSpec:
    """The ``report`` section of the latest sweep recorded in a run folder (or of ``sweep``)."""
    from kdtune.report import parse_report
    from kdtune.results import select_records

    record = select_records(run_dir, sweep)[-1]
    source = str(record.path / "sweep.yaml") if record.path else str(run_dir)
    return parse_report(record.raw.get("report"), source)


def _cmd_analyze(args: argparse.Namespace) -> int:
    import shlex
    import traceback

    from kdtune.analysis import ANALYSES, MODULES, Output, RunView, filter_rows, load_all, run_analyses
    from kdtune.analysis.page import AnalysisFailure, report_tables, write_page
    from kdtune.execute import plural
    from kdtune.results import select_records

    run_dir = Path(args.run_dir)
    select_records(run_dir, args.sweep)  # not a run folder, or no such sweep: one line, before any work
    load_all()
    names = list(dict.fromkeys(args.only)) if args.only else [n for n in MODULES if n in ANALYSES]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise KdtuneError(f"--only {unknown[0]}: unknown analysis; known: {', '.join(ANALYSES.names()) or 'none installed'}")
    where: dict[str, list[str]] = {}
    for text in args.where:
        key, _, values = text.partition("=")
        if not key.strip() or not _csv(values):
            raise KdtuneError(f"--where {text}: must be KEY=V1,V2 (KEY a results column), e.g. student=MLP or teacher=CNN,data")
        where.setdefault(key.strip(), []).extend(v for v in _csv(values) if v not in where.get(key.strip(), []))
    eval_sets = list(dict.fromkeys(e for group in args.eval_set or [] for e in group)) or None
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise KdtuneError(f"--data-dir {args.data_dir}: no such folder")
    view = RunView(run_dir, where, eval_sets, args.data_dir, args.sweep)  # checks the --where keys and --eval-set names
    scope = " and ".join(f"{k} in {{{', '.join(v)}}}" for k, v in where.items())
    scope = f" with {scope}" if scope else ""
    if not view.trials:
        raise KdtuneError(f"{run_dir}: no finished trial{scope} to analyse")
    r = report_defaults(run_dir, args.sweep)
    report_notes: list[str] = []
    try:
        df = filter_rows(view.results, where)
        metrics, shown = _metrics(df, None, r.metrics), eval_sets or r.eval_sets
        tables = report_tables(df, metrics, r.rows, r.cols, shown, r.digits, report_stats(r))  # as `kdtune report`
    except KdtuneError as e:  # the analyses can still be useful
        tables, report_notes = [], [f"no report tables: {e}"]
    out_dir = run_dir / "analysis"
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as e:
        raise KdtuneError(f"{out_dir}: cannot create it ({e.strerror})") from None
    print(f"analyze {run_dir}: {plural(len(view.trials), 'finished trial')}{scope} → {out_dir}")
    if not names:
        print("no analyses installed; the page shows the report only")
    sections: list[Output | AnalysisFailure] = []
    for name in names:
        try:
            sections += run_analyses(view, out_dir, [name])
        except Exception as e:  # one analysis failing does not stop the others
            message = " ".join((str(e) if isinstance(e, KdtuneError) else f"{type(e).__name__}: {e}").split())
            print(f"{name}: failed: {message}", file=sys.stderr)
            sections.append(AnalysisFailure(name, message, traceback.format_exc()))
    command = ["kdtune", "analyze", args.run_dir]
    command += ["--only", ",".join(args.only)] if args.only else []
    command += [a for text in args.where for a in ("--where", text)]
    command += ["--eval-set", ",".join(eval_sets)] if eval_sets else []
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--sweep", args.sweep] if args.sweep else []
    facts = [("trials", plural(len(view.trials), "finished trial") + scope)]
    facts += [("eval sets", ", ".join(view.eval_sets))]
    page = write_page(run_dir, sections, shlex.join(command), tables, sweep=args.sweep, facts=facts, report_notes=report_notes)
    print(f"page: {page}")
    return 1 if any(isinstance(s, AnalysisFailure) for s in sections) else 0


def _cmd_study(args: argparse.Namespace) -> int:
    from kdtune.spec import load_sweep
    from kdtune.study import describe, load_study, run_study, sweep_path

    study = load_study(args.study, args.out)
    if args.data_dir is None and study.model.data_dir is not None:
        args.data_dir = study.model.data_dir
    for entry in study.sweeps:  # every sweep checked before any work (as kdtune run checks its one)
        load_sweep(str(sweep_path(study, entry)), entry.set, data_root=args.data_dir, output=str(study.out_of(entry)))
    if args.dry_run:
        print("\n".join(describe(study)))
        return 0
    if args.report_only and not any(d.is_dir() for d in study.table_dirs):
        raise KdtuneError(f"--report-only: no run folder {study.table_dirs[0]} yet; run kdtune study {args.study} first")

    def run_sweep(path: Path, entry: Any) -> int:
        if args.report_only:
            return 0
        ns = argparse.Namespace(
            command="run",
            sweep=str(path),
            overrides=list(entry.set),
            data_dir=args.data_dir,
            out=str(study.out_of(entry)),
            address=args.address,
            executor=args.executor,
            metric=None,
            no_report=True,
            tensorboard=False,
        )
        return _cmd_run(ns)

    def analyze(run_dir: Path) -> int:
        if args.report_only:
            return 0
        a = study.analyses_of(run_dir)
        ns = argparse.Namespace(
            run_dir=str(run_dir),
            only=list(a.only) or None,
            where=list(a.where),
            eval_set=[list(a.eval_sets)] if a.eval_sets else None,
            data_dir=args.data_dir,
            sweep=None,
        )
        return _cmd_analyze(ns)

    def results(run_dirs: Sequence[Path]) -> pd.DataFrame:
        import pandas as pd

        from kdtune.results import collect_runs

        present = [d for d in run_dirs if d.is_dir()]
        return collect_runs(present)[0] if present else pd.DataFrame(columns=["trial_id", "status", "sweep"])

    words = ["kdtune", "study", args.study]
    words += ["--data-dir", args.data_dir] if args.data_dir else []
    words += ["--out", args.out] if args.out else []
    status = run_study(study, run_sweep=run_sweep, analyze=analyze, results=results, command=shlex.join(words))
    if args.export:
        from kdtune.study import export

        print(f"exported: {export(study, Path(args.export))}")
    return status


def _cmd_download(args: argparse.Namespace) -> int:
    from kdtune.data.mnist import download_mnist

    print(f"MNIST in {download_mnist(Path(args.data_dir))}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from kdtune.sweep_reference import sweep_reference_markdown

        sys.stdout.write(sweep_reference_markdown())
        return 0
    from kdtune.spec import schema_text

    sys.stdout.write(schema_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtune`` console script."""
    try:
        args = build_parser().parse_args(argv)
        return {
            "run": _cmd_run,
            "tune": _cmd_tune,
            "plan": _cmd_plan,
            "report": _cmd_report,
            "status": _cmd_status,
            "analyze": _cmd_analyze,
            "study": _cmd_study,
            "download": _cmd_download,
            "schema": _cmd_schema,
        }[args.command](args)
    except KdtuneError as e:
        if isinstance(e, _UsageError):
            sys.stderr.write(e.usage)
        for line in str(e).splitlines() or [""]:  # several mistakes of a sweep file: one line each
            print(f"kdtune: error: {line}", file=sys.stderr)
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
        reason = getattr(e, "reason", None)  # kdtune.execute.RayDied: the Ray instance died under the run
        if reason is not None and reason.startswith("out of memory"):
            print(
                f"kdtune: the run stopped, {reason} (the node's memory ran out; another process may hold it); "
                f"{finished} of {total} trials finished and are kept; free memory, or run fewer trials at once "
                f"(execution.max_concurrent_trials), and resume with: {prog} {shlex.join(words)}",
                file=sys.stderr,
            )
            return 1
        if reason is not None:
            print(
                f"kdtune: the Ray instance died ({reason}); {finished} of {total} trials finished and are kept; "
                f"resume with: {prog} {shlex.join(words)}",
                file=sys.stderr,
            )
            return 1
        print(
            f"kdtune: interrupted; {finished} of {total} trials finished and are kept. "
            f"Resume with the same command: {prog} {shlex.join(words)}",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

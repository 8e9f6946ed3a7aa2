"""The use cases of kdtune, typed: plan, run and tune a sweep, report, analyse and study a run folder, print its
status. :mod:`kdtune.cli` parses its flags and calls these; a case study (:func:`study`) calls :func:`run_sweep` and
:func:`analyse` as they are. Heavy layers (torch, Ray, the sweep reader) are imported inside the functions, so
``kdtune status`` and ``kdtune report`` start light. Bad input raises a one-line :class:`~kdtune.errors.KdtuneError`
before any work starts; what a use case prints goes to stdout and stderr as it happens; each returns the exit status.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtune.errors import KdtuneError

if TYPE_CHECKING:
    import pandas as pd

    from kdtune.plan import Plan
    from kdtune.results.tables import Look, ReportSpec
    from kdtune.run.execute import InlineExecutor, RayExecutor
    from kdtune.spec.sweepfile import SweepSpec

KD_SHOWN = ("temperature", "w_hard", "w_soft")  # a plan line shows these of every student (τ=4 w_hard=0 w_soft=1)


@dataclass(frozen=True)
class SweepInput:
    """A sweep as a command names it: its file, ``--set`` overrides, the data folder and the run folder."""

    path: str | Path
    overrides: Sequence[str] = ()
    data_dir: str | Path | None = None
    out: str | Path | None = None


# ---------------------------------------------------------------- a sweep: plan, run, tune


def load_sweep(sweep: SweepInput, for_run: bool = False, mlflow: str | None = None, wandb: str | None = None) -> SweepSpec:
    """The sweep file read and checked (one line per mistake); ``for_run``: then its run folder checked and
    ``--mlflow``/``--wandb`` put in, its trackers checked (installed, reachable), before any work."""
    from kdtune.spec.sweepfile import load_sweep as load

    spec = load(sweep.path, sweep.overrides, data_root=sweep.data_dir, output=sweep.out)
    if not for_run:
        return spec
    from kdtune.rundir import check_out_dir

    check_out_dir(spec.output)  # before loading any data
    if mlflow is None and wandb is None and not spec.trackers:
        return spec
    from kdtune.run.trackers import check_trackers, with_flags

    spec = with_flags(spec, mlflow, wandb)
    check_trackers(spec.trackers, [n for n, v in (("mlflow", mlflow), ("wandb", wandb)) if v is not None])
    return spec


def load_plan(sweep: SweepInput, *, for_run: bool = False, mlflow: str | None = None, wandb: str | None = None) -> Plan:
    """The plan of a sweep, its data loaded once (a missing file, a malformed line or an impossible split stops here);
    ``for_run``: the run folder and the trackers checked first. Warnings (valid, likely unintended settings) printed."""
    from kdtune.plan import make_plan, sweep_warnings
    from kdtune.train.data import load_data

    spec = load_sweep(sweep, for_run, mlflow, wandb)
    try:
        load_data(spec.data, spec.data_root)
    except ValueError as e:
        raise KdtuneError(f"{sweep.path}: data: {e}") from None
    plan = make_plan(spec)
    for warning in sweep_warnings(spec):  # the run goes on
        print(f"kdtune: warning: {warning}", file=sys.stderr)
    return plan


def show_plan(sweep: SweepInput) -> int:
    """``kdtune plan``: the sweep's trials, stages and groups, what is already finished, without training."""
    from kdtune.plan import stream_design
    from kdtune.results.status import distinguishing
    from kdtune.run.execute import plural
    from kdtune.run.ledger import plan_trials
    from kdtune.rundir import is_finished

    plan = load_plan(sweep)
    spec = plan.spec
    print(f"sweep {spec.name}: {plural(len(plan.trials), 'trial')} in {plural(len(plan.stages), 'stage')} → {spec.output}")
    apart = distinguishing(spec.output, plan_trials(plan))  # e.g. the switch point of a switched student
    print("\n".join(stream_design(spec)["lines"]))  # which conditions share which random streams
    for k, stage in enumerate(plan.stages, 1):
        n = sum(len(g.trials) for g in stage)
        done = sum(is_finished(spec.output, t.id) for g in stage for t in g.trials)
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


def run_sweep(
    sweep: SweepInput,
    *,
    executor: str = "ray",
    address: str | None = None,
    metrics: Sequence[str] | None = None,
    report: bool = True,
    tensorboard: bool = False,
    mlflow: str | None = None,
    wandb: str | None = None,
    command: Sequence[str] = (),
) -> int:
    """``kdtune run``: train the sweep's unfinished trials (stage by stage) into its run folder under the folder's
    lock, write the results table and print the report; ``command`` (the words after ``kdtune``) goes into the sweep's
    record. Exit status 1 when a trial did not finish."""
    import shutil

    from kdtune.run.execute import InlineExecutor, JoinError, RayExecutor, check_join, plural
    from kdtune.run.ledger import write_sweep_record
    from kdtune.rundir import RunLock, init_run_dir, remove_scratch

    plan = load_plan(sweep, for_run=True, mlflow=mlflow, wandb=wandb)  # checks --out before loading any data
    spec = plan.spec
    if executor == "ray" and address:
        check_join(address)  # nothing answers, or authentication fails: one line, before the run folder exists
    fresh = not spec.output.exists() or (spec.output.is_dir() and not any(spec.output.iterdir()))
    init_run_dir(spec.output)
    if tensorboard and not spec.execution.tensorboard:
        spec = dataclasses.replace(spec, execution=dataclasses.replace(spec.execution, tensorboard=True))
        plan = dataclasses.replace(plan, spec=spec)
    try:
        with RunLock(spec.output):
            remove_scratch(spec.output)  # what a worker killed mid-commit left; no worker of this run has started yet
            print(
                f"sweep {spec.name}: {plural(len(plan.trials), 'trial')} in {plural(len(plan.stages), 'stage')} → {spec.output}"
            )
            record = write_sweep_record(plan, command)
            if executor == "inline":
                runner: InlineExecutor | RayExecutor = InlineExecutor()
            else:
                runner = RayExecutor.for_sweep(spec, address)
                runner.linger = True  # Ray is shut down after the report is printed (_finish_run), not before
            try:
                return _finish_run(plan, record, runner, metrics, report)
            finally:
                if isinstance(runner, RayExecutor):
                    runner.close()
    except JoinError:
        if fresh:  # made by this invocation, and no trial can have started: leave no half-made run folder
            shutil.rmtree(spec.output, ignore_errors=True)
        raise


def _finish_run(
    plan: Plan, record: Path, executor: InlineExecutor | RayExecutor, metrics: Sequence[str] | None, report: bool
) -> int:
    """Run the plan's trials, write the results table and print the report; the exit status."""
    from kdtune.results.reader import collect_run, write_results
    from kdtune.results.tables import render
    from kdtune.run.execute import RayDied, execute, plural
    from kdtune.run.ledger import collect, record_outcome

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
    if report and (df["status"] == "ok").any():
        r = spec.report.check()
        print()
        print(render(df, pick_metrics(df, metrics, r.metrics), "markdown", r.rows, r.cols, r.eval_sets, r.digits, r))
    return 1 if failures else 0


def tune(
    sweep: SweepInput,
    *,
    model: str,
    teacher: str = "data",
    trials: int = 20,
    storage: str | None = None,
    address: str | None = None,
    mlflow: str | None = None,
    wandb: str | None = None,
) -> int:
    """``kdtune tune``: a study of ``trials`` search trials over one model's (or one teacher → student pair's)
    settings; the teachers it needs trained first. Exit status 1 when the study has fewer finished trials."""
    from kdtune.run.execute import RayExecutor, check_join, execute, run_log
    from kdtune.rundir import RunLock, init_run_dir
    from kdtune.tuning.search import prepare, run_search

    spec = load_sweep(sweep, for_run=True, mlflow=mlflow, wandb=wandb)
    setup = prepare(spec, model, teacher)
    if storage:  # a wrong URL or a server that does not answer stops here, before any work
        from kdtune.tuning.storage import open_storage

        open_storage(storage)
    t = spec.tune
    print(
        f"tune {setup.label} on {spec.name}: val {t.metric} ({t.direction}), the mean of {t.seeds} seeds per search trial; "
        + ", ".join(f"{k} {d.describe()}" for k, d in setup.space.params)
        + f" → {spec.output}"
    )
    if address:
        check_join(address)  # before the run folder exists
    init_run_dir(spec.output)
    with RunLock(spec.output):
        if setup.teachers is not None:
            failures = execute(setup.teachers, RayExecutor.for_sweep(spec, address))
            if failures:
                raise KdtuneError(
                    f"{len(failures)} teacher trial(s) of {teacher} did not finish: {next(iter(failures.values()))}"
                )
        with run_log(spec.output) as log_path, RayExecutor.for_sweep(spec, address) as ray_executor:
            summary = run_search(setup, trials, storage, ray_executor)
        if summary["counts"]["failed"]:
            print(f"log with the full tracebacks: {log_path}")
    return 0 if summary["best"] is not None and summary["counts"]["finished"] >= trials else 1


# ---------------------------------------------------------------- a run folder: status, report, analyse


def status(run_dir: str | Path, sweep: str | None = None, trials: bool = False) -> str:
    """``kdtune status``: what a run folder holds, as text (read-only)."""
    from kdtune.results.status import run_status

    return run_status(Path(run_dir), sweep, trials)


def pick_metrics(df: pd.DataFrame, asked: Sequence[str] | None, defaults: Sequence[str]) -> list[str]:
    """The metrics to report: those asked for, else the defaults that these results have (e.g. no d_accuracy for
    data without distances), with a note on the others."""
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
    from kdtune.results.reader import select_records
    from kdtune.results.tables import parse_report

    record = select_records(run_dir, sweep)[-1]
    source = str(record.path / "sweep.yaml") if record.path else str(run_dir)
    return parse_report(record.raw.get("report"), source)


def write_text(text: str, output: str | Path | None) -> None:
    """``text`` to the file ``output`` (one line on stderr saying so), else to stdout."""
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            raise KdtuneError(f"{output}: cannot write the report ({e.strerror})") from None
        print(f"report written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def report(
    run_dirs: Sequence[str | Path],
    *,
    sweep: str | None = None,
    fmt: str = "markdown",
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    eval_sets: Sequence[str] | None = None,
    digits: int | None = None,
    statistics: Mapping[str, Any] | None = None,
    look: Look | None = None,
    references: Sequence[str] = (),
    output: str | Path | None = None,
    mlflow: str | None = None,
) -> int:
    """``kdtune report``: the tables of one or more run folders (the latest recorded sweep's ``report`` section, then
    what is given here over it: ``statistics`` holds the report's statistics flags), or with ``references`` each
    published table beside the run's cells and its claims' verdicts; written to ``output`` or stdout, and with an
    MLflow tracking (``mlflow``, else the sweep's ``outputs.mlflow``) logged to the sweep's summary run."""
    from kdtune.repro.reference import resolve_target
    from kdtune.results.reader import collect_runs, load_records, record_labels, select_records
    from kdtune.results.stats import check_alpha
    from kdtune.results.tables import parse_compare, render
    from kdtune.run.execute import plural

    given = {k: v for k, v in (statistics or {}).items() if v is not None}
    if "alpha" in given:
        check_alpha(given["alpha"])
    if "compare" in given:
        parse_compare(given["compare"])  # before reading the run folders
    targets = [resolve_target(t) for t in references]  # every file and claim checked first
    tracker = _report_tracker(Path(run_dirs[0]), sweep, mlflow)  # installed and answering, before any table is made
    df, notes = collect_runs(run_dirs, sweep)
    for d in run_dirs:
        records = select_records(d, sweep)
        if len(records) > 1 or len(run_dirs) > 1:
            labels = record_labels(load_records(d))  # the sweeps as their users named them
            which = ", ".join(f"{labels[r.name]} ({plural(len(r.trials), 'trial')})" for r in records)
            scope = "union of" if len(records) > 1 else "sweep"
            print(f"{d}: {scope} {which}" + ("; --sweep NAME for one" if len(records) > 1 else ""), file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    r = dataclasses.replace(report_defaults(Path(run_dirs[0]), sweep), **given).check()
    if targets:
        from kdtune.labels import SETTINGS
        from kdtune.repro.claims import Evidence
        from kdtune.repro.reference import check_tables, render_checks

        interval = given.get("interval", "ci95")  # a reference check shows 95 % intervals unless told otherwise
        checks = check_tables(  # the tables' claims one family: one test per comparison, Holm once
            targets, Evidence(df, Path(run_dirs[0]), SETTINGS), interval=interval, test=r.test, alpha=r.alpha,
            correction=r.correction, seed=r.seed,
        )  # fmt: skip
        write_text(render_checks(checks, fmt, r.alpha, r.correction), output)
        return 0
    metrics = pick_metrics(df, metrics, r.metrics)
    name = "-".join(re.sub(r"[^A-Za-z0-9]+", "-", Path(d).resolve().name) for d in run_dirs)
    shown = (rows or r.rows, cols or r.cols, eval_sets or r.eval_sets, r.digits if digits is None else digits)

    def table(form: str) -> str:
        return render(df, metrics, form, *shown, r, look, name)

    write_text(table(fmt), output)
    if tracker is not None:
        from kdtune.run.trackers import log_report

        m, recorded, tags = tracker
        files = {"report.md": table("markdown"), "report.csv": table("csv"), "report.tex": table("latex")}
        run_id, logged = log_report(m, Path(run_dirs[0]), recorded, files, tags)
        where = f"run {run_id} of experiment {m.experiment} at {m.tracking_uri}"
        print(f"mlflow: {len(logged)} artifacts logged to {where}", file=sys.stderr)
    return 0


def _report_tracker(run_dir: Path, sweep: str | None, mlflow: str | None) -> tuple[Any, str, dict[str, str]] | None:
    """``report --mlflow URI``, else the ``outputs.mlflow`` of the sweep recorded in the run folder: (where, the sweep's
    name, its tags), checked (installed, answering); None when neither asks for MLflow."""
    from kdtune.results.reader import select_records

    record = select_records(run_dir, sweep)[-1]
    outputs = record.raw.get("outputs") if isinstance(record.raw.get("outputs"), dict) else {}
    setting = outputs.get("mlflow") if isinstance(outputs.get("mlflow"), dict) else None
    if mlflow is None and setting is None:
        return None
    from kdtune import __version__
    from kdtune.run.trackers import check_mlflow, require
    from kdtune.train.config import RESULTS_VERSION, MlflowSpec, check_tracking_uri

    flag = mlflow is not None
    uri = mlflow if flag else setting.get("tracking_uri")  # type: ignore[union-attr]
    try:
        check_tracking_uri(str(uri))
    except ValueError as e:
        raise KdtuneError(f"{'--mlflow' if flag else 'outputs.mlflow.tracking_uri'} {uri}: {e}") from None
    m = MlflowSpec(str(uri), str((setting or {}).get("experiment") or record.sweep))
    require("mlflow", flag)
    check_mlflow(m, flag)
    tags = {"kdtune.record": record.name, "kdtune.version": __version__, "kdtune.results_version": str(RESULTS_VERSION)}
    return m, record.sweep, tags


def report_tuning(
    run_dirs: Sequence[str | Path], *, storage: str | None, fmt: str, digits: int | None, output: str | None
) -> int:
    """``kdtune report --tuning``: a run folder's studies (best search trials, importances, figures)."""
    from kdtune.tuning.report import render_tuning

    if len(run_dirs) != 1:
        raise KdtuneError("--tuning reports one run folder at a time")
    run_dir = Path(run_dirs[0])
    if not run_dir.is_dir():
        raise KdtuneError(f"{run_dir}: no such run folder")
    text, figures = render_tuning(run_dir, storage, fmt, 4 if digits is None else digits)
    write_text(text, output)
    if figures:
        print(f"figures: {figures[0].parent} ({', '.join(p.name for p in figures)})", file=sys.stderr)
    return 0


def parse_where(texts: Sequence[str]) -> dict[str, list[str]]:
    """``KEY=V1,V2`` filters (``--where``, a study's ``analyses.where``) as key → values, each key once."""
    where: dict[str, list[str]] = {}
    for text in texts:
        key, _, values = text.partition("=")
        found = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not found:
            raise KdtuneError(f"--where {text}: must be KEY=V1,V2 (KEY a results column), e.g. student=MLP or teacher=CNN,data")
        where.setdefault(key.strip(), []).extend(v for v in found if v not in where.get(key.strip(), []))
    return where


def analyse(
    run_dir: str | Path,
    *,
    only: Sequence[str] | None = None,
    where: Mapping[str, Sequence[str]] | None = None,
    eval_sets: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    sweep: str | None = None,
) -> int:
    """``kdtune analyze``: the analyses (``only`` these, default all) of a run folder's finished trials (``where``:
    key → values they must have), their figures and tables under ``RUN/analysis/`` and one page with the report's
    tables; an analysis that fails does not stop the others (exit status 1)."""
    import traceback

    from kdtune.analysis import ANALYSES, MODULES, Output, RunView, filter_rows, load_all, run_analyses
    from kdtune.analysis.page import AnalysisFailure, report_tables, write_page
    from kdtune.results.reader import select_records
    from kdtune.run.execute import plural

    run_dir, where = Path(run_dir), {k: list(v) for k, v in (where or {}).items()}
    select_records(run_dir, sweep)  # not a run folder, or no such sweep: one line, before any work
    load_all()
    names = list(dict.fromkeys(only)) if only else [n for n in MODULES if n in ANALYSES]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise KdtuneError(f"--only {unknown[0]}: unknown analysis; known: {', '.join(ANALYSES.names()) or 'none installed'}")
    eval_sets = list(dict.fromkeys(eval_sets or [])) or None
    if data_dir and not Path(data_dir).is_dir():
        raise KdtuneError(f"--data-dir {data_dir}: no such folder")
    view = RunView(run_dir, where, eval_sets, data_dir, sweep)  # checks the --where keys and --eval-set names
    scope = " with " + " and ".join(f"{k} in {{{', '.join(v)}}}" for k, v in where.items()) if where else ""
    if not view.trials:
        raise KdtuneError(f"{run_dir}: no finished trial{scope} to analyse")
    r = report_defaults(run_dir, sweep).check()
    report_notes: list[str] = []
    try:
        df = filter_rows(view.results, where)
        tables = report_tables(df, pick_metrics(df, None, r.metrics), r.rows, r.cols, eval_sets or r.eval_sets, r.digits, r)
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
    flags = [("--only", ",".join(only or [])), *(("--where", f"{k}={','.join(v)}") for k, v in where.items())]
    flags += [("--eval-set", ",".join(eval_sets or [])), ("--data-dir", str(data_dir or "")), ("--sweep", sweep or "")]
    command = ["kdtune", "analyze", str(run_dir), *(word for flag, value in flags if value for word in (flag, value))]
    facts = [("trials", plural(len(view.trials), "finished trial") + scope), ("eval sets", ", ".join(view.eval_sets))]
    page = write_page(run_dir, sections, shlex.join(command), tables, sweep=sweep, facts=facts, report_notes=report_notes)
    print(f"page: {page}")
    return 1 if any(isinstance(s, AnalysisFailure) for s in sections) else 0


# ---------------------------------------------------------------- a case study


def study(
    path: str | Path,
    *,
    out: str | None = None,
    data_dir: str | None = None,
    address: str | None = None,
    executor: str = "ray",
    report_only: bool = False,
    dry_run: bool = False,
    export: str | Path | None = None,
    command: Sequence[str] = (),
) -> int:
    """``kdtune study``: every sweep of a study checked, then run (:func:`run_sweep`) into its run folder, the
    analyses of each folder (:func:`analyse`), and the report written (``report_only``: from what the folders hold;
    ``dry_run``: what it would do); a sweep with failed trials does not stop the study (exit status 1). ``command``:
    the words after ``kdtune``, recorded with each sweep's run."""
    import pandas as pd

    from kdtune.repro.study import describe, load_study, sweep_path, write_latex, write_report
    from kdtune.results.reader import collect_runs

    s = load_study(path, out)
    data_dir = data_dir if data_dir is not None else s.model.data_dir
    sweeps = [SweepInput(sweep_path(s, entry), entry.set, data_dir, s.out_of(entry)) for entry in s.sweeps]
    for sweep in sweeps:  # every sweep checked before any work (as kdtune run checks its one)
        load_sweep(sweep)
    if dry_run:
        print("\n".join(describe(s)))
        return 0
    if report_only and not any(d.is_dir() for d in s.table_dirs):
        raise KdtuneError(f"--report-only: no run folder {s.table_dirs[0]} yet; run kdtune study {path} first")
    status = 0
    for sweep in sweeps if not report_only else []:
        status = max(status, run_sweep(sweep, executor=executor, address=address, report=False, command=command))

    def results(run_dirs: Sequence[Path]) -> pd.DataFrame:
        present = [d for d in run_dirs if d.is_dir()]
        return collect_runs(present)[0] if present else pd.DataFrame(columns=["trial_id", "status", "sweep"])

    df, everything = results(s.table_dirs), results(s.run_dirs)
    runs = []
    for run_dir in s.run_dirs:
        part = everything[everything["run"] == str(run_dir)] if "run" in everything else everything
        per_sweep = part.assign(sweep=part["sweep"].astype(str).str.split(",")).explode("sweep")  # every table has "sweep"
        for name, group in per_sweep.groupby("sweep", sort=False):
            trials, ok = group["trial_id"].nunique(), group.loc[group["status"] == "ok", "trial_id"].nunique()
            role = "" if run_dir in s.table_dirs else " (for the analyses only, not in the tables)"
            runs.append(f"{name} in {run_dir}: {ok} of {trials} trials finished{role}")
    for run_dir in s.run_dirs if not report_only else []:
        a = s.analyses_of(run_dir)
        if a is not None:
            rc = analyse(run_dir, only=list(a.only) or None, where=parse_where(a.where), eval_sets=a.eval_sets, data_dir=data_dir)
            status = max(status, rc)
    words = ["kdtune", "study", str(path), *(["--data-dir", data_dir] if data_dir else []), *(["--out", out] if out else [])]
    md, page = write_report(s, df, shlex.join(words), runs)
    print(f"report: {md}\npage: {page}\nLaTeX tables: {write_latex(s, df)}")
    if export:
        from kdtune.repro.study import export as export_to

        print(f"exported: {export_to(s, Path(export))}")
    return status

"""``kdtune report RUN --tuning``: per study, the best search trials (mean ± std over seeds), the
importance of each searched setting (``optuna.importance``), and the optimization-history and
importance figures (``optuna.visualization.matplotlib``, PNG and PDF)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from kdtune.errors import KdtuneError
from kdtune.labels import value_text
from kdtune.results.tables import FORMATS, to_latex, to_markdown
from kdtune.tuning import storage as studies

TOP = 10  # search trials in the best-trials table
FEW = 20  # complete search trials below which the importances get a caveat: fANOVA's forest fits noise


def _storage_url(run_dir: Path, storage: str | None) -> str:
    if storage:
        return storage
    path = Path(run_dir) / "tuning" / "optuna.db"
    if not path.is_file():
        raise KdtuneError(
            f"{run_dir}: no tuning study here (no {path}); run kdtune tune first, or give --storage URL for a shared study"
        )
    return f"sqlite:///{path.resolve()}"


def best_trials(study: optuna.Study, digits: int = 4, top: int = TOP) -> pd.DataFrame:
    """The ``top`` complete search trials, best first: number, settings, ``mean ± std (n)``."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    complete.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")  # type: ignore[arg-type, return-value]
    rows = []
    for t in complete[:top]:
        s = studies.seed_summary(t)
        std = s["std"] if s["std"] is not None and math.isfinite(s["std"]) else 0.0
        cell = f"{s['mean']:.{digits}f} ± {std:.{digits}f} ({s['n_seeds']})"
        rows.append({"trial": t.number, **{k: value_text(v) for k, v in sorted(t.params.items())}, "objective": cell})
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()


def importances(study: optuna.Study) -> dict[str, float]:
    """Importance of each searched setting (fANOVA over the complete trials); empty when too few."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or not any(t.params for t in complete):
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every complete trial has the same settings
        return {}


def history_label(study: optuna.Study) -> str:
    """The y-axis label of a study's optimization history: the tuned metric (last part of its name)."""
    return f"validation {studies.metric_of(study.study_name)} (mean of seeds)"


def plot_history(study: optuna.Study) -> Any:
    """The optimization history (matplotlib axes), its y axis and legend named after the tuned metric."""
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ovm.plot_optimization_history(study, target_name=history_label(study))


def figures(study: optuna.Study, out_dir: Path) -> list[Path]:
    """The optimization history and the importances as PNG and PDF in ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = study.study_name.replace(":", "--").replace("/", "_")
    made: list[Path] = []
    plots: list[tuple[str, Any]] = [("history", plot_history)]
    if importances(study):
        plots.append(("importances", ovm.plot_param_importances))
    for kind, plot in plots:
        with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = plot(study)
        fig = ax.figure
        fig.set_size_inches(7, 4)
        fig.tight_layout()
        for ext in ("png", "pdf"):
            path = out_dir / f"{stem}-{kind}.{ext}"
            fig.savefig(path, dpi=150, bbox_inches="tight")
            made.append(path)
        plt.close(fig)
    return made


def render_tuning(run_dir: Path, storage: str | None = None, fmt: str = "markdown", digits: int = 4) -> tuple[str, list[Path]]:
    """The tuning report of a run folder's studies as text, and the figures written."""
    if fmt not in FORMATS:
        raise KdtuneError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    url = _storage_url(run_dir, storage)
    store = studies.open_storage(url)
    names = optuna.get_all_study_names(storage=store)
    if not names:
        raise KdtuneError(f"{studies.masked(url)}: no study in this storage")
    parts, csv_rows, made = [], [], []
    for name in sorted(names):
        study = optuna.load_study(study_name=name, storage=store)
        c = studies.counts(study)
        direction = study.direction.name.lower()
        head = (
            f"{name}: best search trials ({direction}), mean ± std (seeds) of the validation metric; "
            f"{c['finished']} finished: {c['complete']} complete, {c['pruned']} stopped early, {c['failed']} failed"
        )
        table = best_trials(study, digits)
        imp = importances(study)
        made += figures(study, Path(run_dir) / "tuning" / "figures")
        if fmt == "csv":
            for number, row in table.iterrows():
                csv_rows.append({"study": name, "trial": number, **row.to_dict()})
            csv_rows += [{"study": name, "importance_of": k, "importance": v, "complete": c["complete"]} for k, v in imp.items()]
            continue
        imp_table = pd.DataFrame({"importance": [f"{v:.3f}" for v in imp.values()]}, index=pd.Index(list(imp), name="setting"))
        render = to_markdown if fmt == "markdown" else to_latex
        if not table.empty:
            parts.append(render(table, head))
        else:
            parts.append(f"{name}: no complete search trial yet ({c['finished']} finished)")
        if imp:
            title = f"{name}: importance of each setting (fANOVA over {c['complete']} complete search trials)"
            caveat = [] if c["complete"] >= FEW else [
                f"{c['complete']} complete trials are too few for fANOVA (kdtune asks for {FEW}): its random forest fits "
                "noise, so these numbers rank nothing; run more trials (kdtune tune … --trials N) before reading them"
            ]  # fmt: skip
            written = to_markdown(imp_table, title, caveat) if fmt == "markdown" else to_latex(imp_table, title, caption=caveat)
            parts.append(written)
    if fmt == "csv":
        return pd.DataFrame(csv_rows).to_csv(index=False), made
    return "\n\n".join(parts) + "\n", made

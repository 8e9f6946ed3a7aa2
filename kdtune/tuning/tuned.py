"""``<run>/tuned/<model>[--from-<teacher>].yaml``: the best values a search found, and reading them
back for models marked ``hparams: tuned`` in a sweep file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdtune.errors import KdtuneError
from kdtune.spec import NO_TEACHER, dump_yaml, load_yaml
from kdtune.tuning.space import LOSS_SETTINGS, TRAIN_SETTINGS


def tuned_name(model: str, teacher: str = NO_TEACHER) -> str:
    """``MLP`` or ``MLP--from-CNN``: the file stem, the record name's tail and the study's label."""
    return model if teacher == NO_TEACHER else f"{model}--from-{teacher}"


def tuned_path(run_dir: Path, model: str, teacher: str = NO_TEACHER) -> Path:
    """Where the tuned values of ``model`` (from data, or as a student of ``teacher``) live."""
    return Path(run_dir) / "tuned" / f"{tuned_name(model, teacher)}.yaml"


def tune_command(source: str, model: str, teacher: str, output: Path, name: str) -> str:
    """The ``kdtune tune`` command that makes a missing tuned file."""
    cmd = f"kdtune tune {source} --model {model}"
    if teacher != NO_TEACHER:
        cmd += f" --teacher {teacher}"
    if Path(output) != Path("runs") / name:
        cmd += f" --out {output}"
    return cmd


def write_tuned(path: Path, content: dict[str, Any]) -> None:
    """Write a tuned file (YAML with a header line saying what made it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# written by kdtune tune: the best values of {content['model']}"
    header += " trained from data" if content["teacher"] == NO_TEACHER else f" as a student of {content['teacher']}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + "\n" + dump_yaml(content))
    tmp.replace(path)


def read_tuned(run_dir: Path, model: str, teacher: str, source: str, name: str) -> dict[str, Any]:
    """The values of a tuned file; one line naming the ``kdtune tune`` command if it does not exist."""
    path = tuned_path(run_dir, model, teacher)
    role = "trained from data" if teacher == NO_TEACHER else f"as a student of {teacher}"
    if not path.is_file():
        raise KdtuneError(
            f"{source}: models.{model} uses tuned values {role} (hparams: tuned) but {path} does not exist; "
            f"make it with: {tune_command(source, model, teacher, run_dir, name)}"
        )
    try:
        content = load_yaml(path.read_text())
    except Exception as e:  # YAML errors and unreadable files alike
        raise KdtuneError(f"{path}: cannot read tuned values ({type(e).__name__})") from None
    values = content.get("values") if isinstance(content, dict) else None
    allowed = (*TRAIN_SETTINGS, *(LOSS_SETTINGS if teacher != NO_TEACHER else ()))
    if not isinstance(values, dict) or not values:
        raise KdtuneError(f"{path}: no 'values' mapping; re-run {tune_command(source, model, teacher, run_dir, name)}")
    bad = [k for k in values if k not in allowed and not str(k).startswith("schedule.")]
    if bad:
        raise KdtuneError(f"{path}: values: {bad[0]!r} is not a tunable setting here; allowed: {', '.join(allowed)}, schedule.*")
    return values

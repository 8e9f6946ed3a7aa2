"""kdtune's one Ray Tune callback: the driver's view of a ``Tuner`` (a sweep's stages, a search) handed to plain
listeners, which show progress, keep errors, feed the experiment trackers or print a search's lines.

Tune pickles its callbacks (and checkpoints them); the pickled copy holds no listener and does nothing. The class is
made on first use, so importing this module imports no Ray.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Listener:
    """What happens to a Ray Tune run, as :func:`tune_callback` tells it; every hook does nothing unless overridden.
    ``error`` is the failed trial's one-line error (:func:`trial_error`)."""

    def step_begin(self, trials: list[Any]) -> None:
        """Before each step of Tune's loop (``trials``: every trial so far)."""

    def step_end(self) -> None:
        """After each step of Tune's loop."""

    def trial_start(self, trial: Any) -> None:
        """A trial started."""

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        """A trial reported ``result``."""

    def complete(self, trial: Any) -> None:
        """A trial ended without an error (its last result in ``trial.last_result``)."""

    def recover(self, trial: Any, error: str) -> None:
        """A trial failed and will be retried."""

    def failed(self, trial: Any, error: str) -> None:
        """A trial failed for good."""


def last_line(error: BaseException | str) -> str:
    """The last non-blank line of an error's text (of a traceback: the exception), or its type's name."""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def error_line(error: BaseException | str) -> str:
    """``Type: message`` of a trial's error in one line (of the trial's own exception if Ray wrapped it)."""
    cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError
    if isinstance(cause, BaseException):
        error = cause
    if isinstance(error, str):
        return last_line(error)
    return f"{type(error).__name__}: {last_line(error)}"


def trial_error(trial: Any) -> str:
    """The one-line error of a failed Ray Tune trial, from the error files Tune just wrote on this machine: the
    pickled exception, else the traceback's last line, else where to look."""
    import ray.cloudpickle

    try:
        if getattr(trial, "pickled_error_file", None) and os.path.isfile(trial.pickled_error_file):
            with open(trial.pickled_error_file, "rb") as f:
                return error_line(ray.cloudpickle.load(f))
        if getattr(trial, "error_file", None) and os.path.isfile(trial.error_file):
            return last_line(Path(trial.error_file).read_text())
    except Exception:  # an unreadable error file must not stop the run
        logger.warning("cannot read the error of trial %s", trial, exc_info=True)
    return "(see the run log)"


def tell(listeners: Sequence[Listener], event: str, *args: Any) -> None:
    """Call hook ``event`` of every listener, in their order."""
    for x in listeners:
        getattr(x, event)(*args)


_CLASS: type | None = None


def tune_callback(listeners: Sequence[Listener], check_interrupt: Callable[[], None] | None = None) -> Any:
    """A ``ray.tune.Callback`` handing Tune's events to ``listeners`` (in their order) and calling
    ``check_interrupt`` after each step of Tune's loop (where a deferred Ctrl-C is raised)."""
    global _CLASS
    if _CLASS is None:
        from ray import tune

        class KdtuneCallback(tune.Callback):
            # no closure over the listeners: Tune pickles this class by value, and must not pickle them with it
            def __init__(self, listeners: Sequence[Listener], check: Callable[[], None] | None) -> None:
                self.listeners, self.check = list(listeners), check

            def __getstate__(self) -> dict[str, Any]:
                return {"listeners": [], "check": None}

            def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
                tell(self.listeners, "step_begin", trials)

            def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
                if self.check is not None:
                    self.check()
                tell(self.listeners, "step_end")

            def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                tell(self.listeners, "trial_start", trial)

            def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
                tell(self.listeners, "result", trial, result)

            def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                tell(self.listeners, "complete", trial)

            def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                tell(self.listeners, "recover", trial, trial_error(trial) if self.listeners else "")

            def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                tell(self.listeners, "failed", trial, trial_error(trial) if self.listeners else "")

        _CLASS = KdtuneCallback
    return _CLASS(listeners, check_interrupt)

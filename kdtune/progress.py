"""What a run shows while it trains: one live tqdm bar per stage in a terminal, plain lines otherwise.

:class:`Progress` knows nothing of Ray: executors feed it events (a group started, finished an
epoch, finished, failed). In a terminal (``live``) it draws one bar per stage on stderr, printing
one line per finished or failed group above it; otherwise (a pipe, a file, CI) it writes those
lines plus a status line every ``every`` seconds. The ETA divides the epochs left by the rate
at which epochs have been done so far in the stage (all running groups together).

It also keeps ``RUN/progress.json`` for ``kdtune status``, replaced atomically (temporary file,
then ``os.replace``) at most every 2 s while epochs finish, at once when a group ends, and at each
stage's end and the run's end::

    {
      "pid": 1234,                # the kdtune run process
      "started": 1732370000.0,    # Unix time the run started
      "updated": 1732370123.4,    # Unix time of this write
      "stage": 1,                 # the stage being run (1-based; 0 before the first), of "stages"
      "stages": 2,
      "state": "running",         # the run: "running", "finished", "interrupted" (Ctrl-C) or "error"
      "groups": {                 # the current stage's groups (a group: trials differing only in seed)
        "MLP-from-CNN-1a2b3c4d": {
          "state": "running",     # "pending", "running", "done" or "failed"
          "epoch": 3,             # epochs done, summed over the group's trials
          "epochs": 30,           # epochs in all, summed over the group's trials
          "trials": ["1a2b3c4d5e6f7a8b"]   # ids of the group's trials this run trains
        }
      }
    }

When the run is interrupted, its running groups are written as "pending" (a re-run redoes them).
A file still "running" whose pid is gone was left by a run that was killed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

PROGRESS = "progress.json"
JSON_EVERY = 2.0  # seconds between progress.json writes while epochs finish
BAR_EVERY = 0.5  # seconds between redraws of the bar between events

logger = logging.getLogger(__name__)


def clock_text(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    s = max(0, round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def short_name(name: str) -> str:
    """A group name with its hash cut to 4 digits (``MLP-from-CNN-1a2b3c4d`` → ``MLP-from-CNN-1a2b``)."""
    head, sep, tail = name.rpartition("-")
    return f"{head}-{tail[:4]}" if sep and head else name


@dataclass
class _Group:
    trials: list[str]
    epochs: list[int]  # per trial
    state: str = "pending"
    done: int = 0  # epochs done, summed over trials
    order: int = 0  # when it started (running groups are listed in that order)

    @property
    def total(self) -> int:
        return sum(self.epochs)

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "epoch": self.done, "epochs": self.total, "trials": self.trials}


class _Bar(tqdm):
    """A tqdm bar with a ``{status}`` field in its format."""

    status = ""

    @property
    def format_dict(self) -> dict[str, Any]:
        return {**super().format_dict, "status": self.status}


class Progress:
    """Progress of one run, stage after stage, fed by events; a context manager (closes the display)."""

    def __init__(
        self,
        run_dir: Path | None = None,
        write: Callable[[str], None] = print,
        live: bool = False,
        stages: int = 1,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        bar_file: TextIO | None = None,
    ) -> None:
        """``run_dir``: where progress.json goes (None: nowhere); ``write``: plain lines; ``live``: a
        tqdm bar on ``bar_file`` (default stderr), lines through tqdm.write to stdout."""
        self.run_dir, self.write, self.live, self.stages, self.every = run_dir, write, live, stages, every
        self.clock, self.wall, self.bar_file = clock, wall, bar_file
        self.stage, self.ended = 0, 0  # ended: groups of this stage that finished or failed
        self.groups: dict[str, _Group] = {}
        self.started = wall()
        self._t0 = self._last_line = self._last_json = self._last_bar = clock()
        self._bar: _Bar | None = None
        self._started_count = 0

    # events -------------------------------------------------------------------------------------

    def start_stage(self, stage: int, groups: Mapping[str, Sequence[tuple[str, int]]]) -> None:
        """A stage begins: ``groups`` maps each group's name to its (trial id, epochs) pairs."""
        self.end_stage()
        self.stage, self.ended, self._started_count = stage, 0, 0
        self.groups = {name: _Group([t for t, _ in trials], [e for _, e in trials]) for name, trials in groups.items()}
        self._t0 = self._last_line = self.clock()
        if self.live:
            fmt = "{desc} {percentage:3.0f}%|{bar:10}| {status}"
            total = max(1, self._epochs()[1])
            self._bar = _Bar(total=total, desc=f"stage {stage}", bar_format=fmt, file=self.bar_file or sys.stderr, leave=False)
        self._update(redraw=True, save=True)

    def group_started(self, name: str) -> None:
        """``name`` started (or restarted after a failure Ray retries)."""
        g = self.groups[name]
        g.state, g.done = "running", 0
        self._started_count += 1
        g.order = self._started_count
        self._update(redraw=True)

    def epoch_done(self, name: str, trial_index: int, epoch: int) -> None:
        """Trial ``trial_index`` (0-based, within the group) of ``name`` finished epoch ``epoch`` (1-based)."""
        g = self.groups[name]
        if g.state == "pending":
            self.group_started(name)
        g.done = sum(g.epochs[:trial_index]) + epoch
        self._update(redraw=True)

    def group_finished(self, name: str, text: str = "done") -> None:
        """``name`` finished; ``text`` follows its name on its line (e.g. its validation accuracy)."""
        g = self.groups[name]
        g.state, g.done = "done", g.total
        self._end_line(name, text)

    def group_failed(self, name: str, error: str) -> None:
        """``name`` failed for good; ``error`` is one line."""
        self.groups[name].state = "failed"
        self._end_line(name, f"FAILED {error}")

    def group_retried(self, name: str, error: str) -> None:
        """``name`` failed and will be tried again."""
        self.line(f"  {name}: failed ({error}); trying again")
        self.groups[name].state, self.groups[name].done = "pending", 0
        self._update(redraw=True, save=True)

    def tick(self) -> None:
        """Called often while waiting: refreshes the bar, writes plain status lines when due."""
        self._update()

    def end_stage(self) -> None:
        """The stage is over: close its bar, write progress.json."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.stage:
            self._write_json()

    def close(self, state: str = "finished") -> None:
        """The run is over (``state``: finished, interrupted or error): close the bar, last progress.json."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if state == "interrupted":
            for g in self.groups.values():
                if g.state == "running":
                    g.state = "pending"
        self._write_json(state)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close("finished")
        else:
            self.close("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "error")

    # what is shown -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Groups of this stage: done, running, failed, left (not started)."""
        out = {"done": 0, "running": 0, "failed": 0, "pending": 0}
        for g in self.groups.values():
            out[g.state] += 1
        return out

    def _epochs(self) -> tuple[int, int]:
        """(epochs done, epochs in all) of this stage; failed groups' unrun epochs are not counted."""
        done = sum(g.done for g in self.groups.values())
        left = sum(g.total - g.done for g in self.groups.values() if g.state != "failed")
        return done, done + left

    def eta(self) -> float | None:
        """Seconds left: epochs left / (epochs done / seconds since the stage started); None before any epoch."""
        done, total = self._epochs()
        elapsed = self.clock() - self._t0
        if done <= 0 or elapsed <= 0:
            return None
        return (total - done) / (done / elapsed)

    def status(self) -> str:
        """One line: counts, ETA, then the running groups' epochs (the last to be cut in a narrow terminal)."""
        c, eta = self.counts(), self.eta()
        parts = [
            f"{c['done']}/{len(self.groups)} done, {c['running']} running, {c['failed']} failed, {c['pending']} left",
            f"~{clock_text(eta)} left" if eta is not None else "ETA ?",
        ]
        running = sorted((g.order, name, g) for name, g in self.groups.items() if g.state == "running")
        if running:
            parts.append(", ".join(f"{short_name(name)} e{g.done}/{g.total}" for _, name, g in running))
        return " · ".join(parts)

    def line(self, text: str) -> None:
        """Show one line (above the bar when live) and log it."""
        logger.info(text.strip())
        if self.live:
            tqdm.write(text, file=sys.stdout)
        else:
            self.write(text)

    def _end_line(self, name: str, text: str) -> None:
        self.ended += 1
        self.line(f"  [{self.ended}/{len(self.groups)}] {name}: {text}")
        self._update(redraw=True, save=True)

    def _update(self, redraw: bool = False, save: bool = False) -> None:
        """Redraw the bar (now, or if due), write a plain status line if due, progress.json (now or if due)."""
        now = self.clock()
        if self._bar is not None:
            if redraw or now - self._last_bar >= BAR_EVERY:
                self._last_bar = now
                done, total = self._epochs()
                self._bar.total, self._bar.n, self._bar.status = max(1, total), done, self.status()
                self._bar.refresh()
        elif not self.live and self.stage and now - self._last_line >= self.every:
            self._last_line = now
            self.write(f"  stage {self.stage} after {clock_text(now - self._t0)}: {self.status()}")
        if save or now - self._last_json >= JSON_EVERY:
            self._write_json()

    def _write_json(self, state: str = "running") -> None:
        self._last_json = self.clock()
        if self.run_dir is None:
            return
        doc = {
            "pid": os.getpid(),
            "started": self.started,
            "updated": self.wall(),
            "stage": self.stage,
            "stages": self.stages,
            "state": state,
            "groups": {n: g.as_json() for n, g in self.groups.items()},
        }
        path = Path(self.run_dir) / PROGRESS
        tmp = path.with_name(f".{PROGRESS}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, path)
        except OSError as e:  # progress.json is a convenience: never stop a run for it
            logger.warning("cannot write %s: %s", path, e)

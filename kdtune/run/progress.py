"""What a run shows while it trains: one live tqdm bar per stage in a terminal, plain lines otherwise.

:class:`Progress` knows nothing of Ray: executors feed it events (a group started, finished an epoch, finished,
failed). In a terminal (``live``) it draws one bar per stage on stderr, with one line per finished or failed group
above it; otherwise (a pipe, CI) it writes those lines plus a status line every ``every`` seconds. The time left:
:meth:`Progress.eta`. It also keeps ``RUN/progress.json`` for ``kdtune status``, replaced atomically at most every
2 s while epochs finish, and at once when a group or a stage or the run ends::

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

import heapq
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
class _Trial:
    """One trial of a running group, as its epoch reports show it."""

    epochs: int
    done: int = 0  # epochs done
    start: float | None = None  # when it began: its group's start, or when the trial before it ended
    first: tuple[float, int] | None = None  # (time, epoch) of its first report
    last: tuple[float, int] | None = None  # (time, epoch) of its latest report

    def seconds_per_epoch(self) -> float | None:
        """Its own pace: between its first and latest reports, else from its start to its one report."""
        if self.first is not None and self.last is not None and self.last[1] > self.first[1]:
            return (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])
        if self.last is not None and self.start is not None and self.last[1] > 0:
            return max(0.0, self.last[0] - self.start) / self.last[1]
        return None


@dataclass
class _Group:
    name: str
    trials: list[str]
    epochs: list[int]  # per trial
    state: str = "pending"
    order: int = 0  # when it started (running groups are listed in that order)
    runs: list[_Trial] = field(default_factory=list)  # per trial, reset at each (re)start
    started: float | None = None  # clock time it (last) started
    last: float | None = None  # clock time of its latest epoch report
    ended: float | None = None  # clock time it finished or failed

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.runs = [_Trial(e) for e in self.epochs]
        self.started = self.last = self.ended = None

    @property
    def total(self) -> int:
        return sum(self.epochs)

    @property
    def done(self) -> int:
        """Epochs done, summed over its trials (all of them once it finished)."""
        return self.total if self.state == "done" else sum(t.done for t in self.runs)

    @property
    def kind(self) -> str:
        """What it trains: its name without the hash (``MLP-from-CNN``); groups of one kind train at one pace."""
        head, sep, _ = self.name.rpartition("-")
        return head if sep and head else self.name

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
        self._slots = 0  # the most groups seen running at once in this stage: the parallel slots

    # events -------------------------------------------------------------------------------------

    def start_stage(self, stage: int, groups: Mapping[str, Sequence[tuple[str, int]]]) -> None:
        """A stage begins: ``groups`` maps each group's name to its (trial id, epochs) pairs."""
        self.end_stage()
        self.stage, self.ended, self._started_count, self._slots = stage, 0, 0, 0
        self.groups = {n: _Group(n, [t for t, _ in trials], [e for _, e in trials]) for n, trials in groups.items()}
        self._t0 = self._last_line = self.clock()
        if self.live:
            fmt = "{desc} {percentage:3.0f}%|{bar:10}| {status}"
            total = max(1, self._epochs()[1])
            self._bar = _Bar(total=total, desc=f"stage {stage}", bar_format=fmt, file=self.bar_file or sys.stderr, leave=False)
        self._update(redraw=True, save=True)

    def group_started(self, name: str) -> None:
        """``name`` started (or restarted after a failure Ray retries)."""
        g = self.groups[name]
        g.reset()
        g.state, g.started = "running", self.clock()
        self._started_count += 1
        g.order = self._started_count
        self._slots = max(self._slots, self.counts()["running"])
        self._update(redraw=True)

    def epoch_done(self, name: str, trial_index: int, epoch: int) -> None:
        """Trial ``trial_index`` (0-based, within the group) of ``name`` finished epoch ``epoch`` (1-based)."""
        g = self.groups[name]
        if g.state == "pending":
            self.group_started(name)
        now, t = self.clock(), g.runs[trial_index]
        for before in g.runs[:trial_index]:
            if before.done == 0:  # never reported while a later trial does: it had finished before this run
                before.done = before.epochs
        if t.first is None:
            ended = [u.last[0] for u in g.runs if u is not t and u.last is not None and u.done >= u.epochs]
            t.start, t.first = max(ended, default=g.started), (now, epoch)
        t.done, t.last, g.last = epoch, (now, epoch), now
        self._update(redraw=True)

    def group_finished(self, name: str, text: str = "done") -> None:
        """``name`` finished; ``text`` follows its name on its line (e.g. its validation accuracy)."""
        self._end(name, "done", text)

    def group_failed(self, name: str, error: str) -> None:
        """``name`` failed for good; ``error`` is one line."""
        self._end(name, "failed", f"FAILED {error}")

    def group_retried(self, name: str, error: str) -> None:
        """``name`` failed and will be tried again."""
        self.line(f"  {name}: failed ({error}); trying again")
        self.groups[name].reset()
        self.groups[name].state = "pending"
        self._update(redraw=True, save=True)

    def tick(self) -> None:
        """Called often while waiting: refreshes the bar, writes plain status lines when due."""
        self._update()

    def end_stage(self, last: bool = False) -> None:
        """The stage is over: close its bar, write progress.json (``last``: the caller writes it)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.stage and not last:
            self._write_json()

    def close(self, state: str = "finished") -> None:
        """The run is over (``state``: finished, interrupted or error): close the bar, last progress.json."""
        self.end_stage(last=True)
        if state == "interrupted":
            for g in self.groups.values():
                if g.state == "running":
                    g.state = "pending"
        self._write_json(state)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close("finished" if exc_type is None else "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "error")

    # what is shown -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Groups of this stage: done, running, failed, left (not started)."""
        return dict.fromkeys(("done", "running", "failed", "pending"), 0) | Counter(g.state for g in self.groups.values())

    def _epochs(self) -> tuple[int, int]:
        """(epochs done, epochs in all) of this stage; failed groups' unrun epochs are not counted."""
        done = sum(g.done for g in self.groups.values())
        left = sum(g.total - g.done for g in self.groups.values() if g.state != "failed")
        return done, done + left

    def eta(self) -> float | None:
        """Seconds until the stage's last group ends; None while nothing tells how fast its groups train.

        Each group runs in one of the parallel slots (the most groups seen running at once). A running group
        needs its trials' own pace (:meth:`_left`); one without a report yet, and a pending group, the observed
        pace of its kind (``MLP-from-CNN``: seconds from start per trial-epoch, start-up included; of all kinds
        where its kind has none). Pending groups go, in order, to the slot that frees first; the estimate is
        when the last slot frees."""
        now = self.clock()
        paces = self._paces()
        overall = sum(p[0] for p in paces.values()) / sum(p[1] for p in paces.values()) if paces else None
        free: list[float] = []
        for g in self.groups.values():
            if g.state == "running":
                left = self._left(g, now, paces[g.kind][0] / paces[g.kind][1] if g.kind in paces else overall)
                if left is None:
                    return None
                free.append(left)
        pending = [g for g in self.groups.values() if g.state == "pending"]
        if not free and not pending:
            return 0.0 if self.groups and any(g.done for g in self.groups.values()) else None
        free += [0.0] * (max(self._slots, len(free), 1) - len(free))
        heapq.heapify(free)
        for g in pending:
            pace = paces[g.kind][0] / paces[g.kind][1] if g.kind in paces else overall
            if pace is None:
                return None
            heapq.heappush(free, heapq.heappop(free) + g.total * pace)
        return max(free)

    def _paces(self) -> dict[str, tuple[float, int]]:
        """Per kind of group: (seconds, trial-epochs) trained so far by its groups that reported an epoch."""
        out: dict[str, tuple[float, int]] = {}
        for g in self.groups.values():
            if g.started is None or g.last is None:
                continue
            trained = [t for t in g.runs if t.first is not None]  # not the trials that had finished before
            if g.state == "done":
                seconds, epochs = (g.ended or g.last) - g.started, sum(t.epochs for t in trained)
            else:
                seconds, epochs = g.last - g.started, sum(t.done for t in trained)
            if epochs > 0:
                s, e = out.get(g.kind, (0.0, 0))
                out[g.kind] = (s + max(0.0, seconds), e + epochs)
        return out

    @staticmethod
    def _left(g: _Group, now: float, pace: float | None) -> float | None:
        """Seconds a running group still needs; ``pace``: its kind's seconds per trial-epoch. A trial under way needs
        its epochs left × its own seconds per epoch (start-up not counted in); trials under way together (batched
        seeds) end with the slowest; trials not begun follow at the group's mean pace; the time since its latest
        report is taken off (at most one epoch's worth)."""
        own = [p for t in g.runs if (p := t.seconds_per_epoch()) is not None]
        if not own:  # no epoch reported yet: the pace of its kind, less the time it has run
            if pace is None:
                return None
            return max(0.0, g.total * pace - (now - (g.started if g.started is not None else now)))
        mean = sum(own) / len(own)
        under_way = [t for t in g.runs if 0 < t.done < t.epochs]
        paces = [(t.epochs - t.done, t.seconds_per_epoch() or mean) for t in under_way]
        current = max((n * p for n, p in paces), default=0.0)
        later = sum(t.epochs for t in g.runs if t.done == 0) * mean
        step = max((p for _, p in paces), default=mean)
        since = now - (g.last if g.last is not None else now)
        return max(0.0, current + later - min(since, step))

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

    def _end(self, name: str, state: str, text: str) -> None:
        g = self.groups[name]
        g.state, g.ended = state, self.clock()
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

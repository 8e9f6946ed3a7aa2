"""Per-model tuning: search spaces in the sweep file, Optuna (through Ray Tune's ``OptunaSearch``) over
search trials of k seeds each, a study in an Optuna RDB storage, best values in ``tuned/*.yaml``.

- search spaces, tuned values applied to a trial and tuned files read back: :mod:`kdtune.train.config` (below the
  planner; the ``tune:`` section is read by :mod:`kdtune.spec.sweepfile`).
- :mod:`kdtune.tuning.storage`: storage, study names, resuming after a crash, best values.
- :mod:`kdtune.tuning.search`: the Ray Tune run (seeds in lockstep, ASHA, progress lines).
- :mod:`kdtune.tuning.report`: best trials, importances and figures for ``kdtune report --tuning``.
"""

"""Per-model tuning: search spaces in the sweep file, Optuna (through Ray Tune's ``OptunaSearch``) over
search trials of k seeds each, a study in an Optuna RDB storage, best values in ``tuned/*.yaml``.

- :mod:`kdtune.tuning.space`: the ``tune:`` section of a sweep file → typed search spaces, validated.
- :mod:`kdtune.tuning.values`: a search trial's (or a tuned file's) values applied to a trial's settings.
- :mod:`kdtune.tuning.study`: storage, study names, resuming after a crash, best values.
- :mod:`kdtune.tuning.search`: the Ray Tune run (seeds in lockstep, ASHA, progress lines).
- :mod:`kdtune.tuning.report`: best trials, importances and figures for ``kdtune report --tuning``.
"""

"""Running a plan: the executors (Ray Tune, inline), progress, the run's ledger of sweep records, kdtune's Ray Tune
callback and the experiment trackers."""

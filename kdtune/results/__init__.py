"""A finished run folder read back (:mod:`~kdtune.results.reader`), its tables, statistics and status.
Imports no torch and no sweep reader."""

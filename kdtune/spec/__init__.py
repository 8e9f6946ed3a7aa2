"""The sweep file: its sections read and checked (:mod:`kdtune.spec.sweepfile`), ``--set`` overrides
(:mod:`kdtune.spec.overrides`) and the generated reference page (:mod:`kdtune.spec.docpage`)."""

from kdtune.spec.sweepfile import SweepSpec, load_sweep, parse_sweep

__all__ = ["SweepSpec", "load_sweep", "parse_sweep"]

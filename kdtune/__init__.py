"""kdtune: knowledge-distillation studies as hyperparameter sweeps on Ray Tune.

Data flow (one module per arrow): ``spec`` (sweep file → SweepSpec) → ``plan`` (stages of trials)
→ ``execute`` (Ray Tune) → ``train`` (one trial) → ``results`` (parquet) → ``report`` (tables).
"""

__version__ = "0.1.0"

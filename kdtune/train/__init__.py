"""One trial: its configuration (:mod:`~kdtune.train.config`, whose hash is the trial id), the trainer, seed batching,
tasks, distillation losses, optimizers and schedules, metrics, and the registries of data sets and models."""

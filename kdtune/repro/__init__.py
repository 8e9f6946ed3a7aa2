"""Reproducing papers: published tables as data, claims and their verdicts, case studies."""

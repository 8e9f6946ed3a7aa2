"""User-facing errors: one line naming what is wrong and what is allowed."""

from __future__ import annotations


class KdtuneError(Exception):
    """Bad input from a person (sweep file, CLI flag, data folder, run folder).

    The CLI prints it as a single line and exits with status 2; no traceback.
    """


class SpecError(KdtuneError):
    """A sweep, study or reference file (or a ``--set`` override) that does not validate: file, field, what is wrong."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class DataError(KdtuneError):
    """A data folder or data file that cannot be used."""

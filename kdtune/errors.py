"""User-facing errors: one line naming what is wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence


class KdtuneError(Exception):
    """Bad input from a person (sweep file, CLI flag, data folder, run folder).

    The CLI prints it as a single line and exits with status 2; no traceback.
    """


class SpecError(KdtuneError):
    """A sweep, study or reference file (or a ``--set`` override) that does not validate: file, field, what is wrong.

    Several mistakes at once are one error: ``problems`` (this one first, then ``others``), one line each, at most
    :attr:`MAX` lines and a last one counting the rest."""

    MAX = 10  # lines of one error: a file with more mistakes than this says how many more there are

    def __init__(self, source: str, field: str, message: str, others: Sequence[SpecError] = ()) -> None:
        self.source, self.field, self.message = source, field, message
        self.problems: list[SpecError] = [self, *others]
        where = f"{source}: {field}" if field else source
        lines = [f"{where}: {message}", *(str(o) for o in others[: self.MAX - 1])]
        if len(others) >= self.MAX:
            lines.append(f"… and {len(others) - self.MAX + 1} more mistakes")
        super().__init__("\n".join(lines))

    @classmethod
    def of(cls, problems: Sequence[SpecError]) -> SpecError:
        """One error for several problems (each a one-line :class:`SpecError`), in their order, repeats once."""
        (source, field, message), *rest = dict.fromkeys((p.source, p.field, p.message) for q in problems for p in q.problems)
        return cls(source, field, message, [cls(*r) for r in rest])


class DataError(KdtuneError):
    """A data folder or data file that cannot be used."""


def first_line(error: BaseException) -> str:
    """The first line of an error's text (a library's message can run to a traceback), or its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

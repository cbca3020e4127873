"""Small-cell suppression of published counts and of values derived from them.

Counts from 1 to 10 are shown as "<11"; ``protect`` hides further cells
wherever a published total would let a suppressed count be worked back by
subtraction, within a table and across linked tables. A data-sharing agreement may
require a larger threshold: the report applies the largest its agreements require
(``small_cell_threshold``), never less than SMALL_CELL_MAX.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar

SMALL_CELL_MAX = 10
SUPPRESSED = "<11"          # a count from 1 to SMALL_CELL_MAX
WITHHELD = "suppressed"     # a derived value that would reveal such a count
NOT_APPLICABLE = "n/a"    # not "-": a leading minus is escaped in CSVs
UNSTABLE_EVENTS = 20       # rates on fewer events are flagged as unstable


# The threshold in force while a report is built (see small_cell_threshold).
_threshold: ContextVar[int] = ContextVar("small_cell_max", default=SMALL_CELL_MAX)


@contextmanager
def small_cell_threshold(largest: int):
    """Within the block, counts from 1 to ``largest`` (at least SMALL_CELL_MAX) are suppressed."""
    token = _threshold.set(max(SMALL_CELL_MAX, int(largest)))
    try:
        yield
    finally:
        _threshold.reset(token)


def small_cell_max() -> int:
    return _threshold.get()


def suppressed_label() -> str:
    """How a suppressed count is shown: "<11" under the usual threshold of 10."""
    return f"<{small_cell_max() + 1}"


def is_small(n: int | None) -> bool:
    return n is not None and 1 <= n <= small_cell_max()


def count_cell(n: int) -> str:
    """A published count: 1 to the threshold (10) become "<11"; zero is shown."""
    return suppressed_label() if is_small(n) else str(int(n))


def derived_cell(value: float | None, counts: tuple[int, ...], fmt: str = "{:.2f}") -> str:
    """A value computed from counts: withheld when any of those counts is suppressed."""
    if any(is_small(n) for n in counts):
        return WITHHELD
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_APPLICABLE
    return fmt.format(value)


def part_cell(part: int, whole: int) -> str:
    """A count published beside its total: withheld when the remainder is suppressed."""
    if is_small(part):
        return suppressed_label()
    return WITHHELD if is_small(whole - part) else str(int(part))


TOTAL = "Total"


def protect(counts: dict, equations: list[list]) -> set:
    """The cells to hide: counts from 1 to 10, plus enough others that none can be worked out.

    ``equations`` lists groups of published cells whose parts add up to the
    last member (a row and its total, a column and its total, three months and
    their quarter, or two cells known to be equal). If exactly one member of a
    group is hidden, the others give it away by subtraction, so a second member
    is hidden too: the smallest non-zero part if there is one, else the
    smallest part, else the total. Repeated until no group has exactly one
    hidden member. This stops derivation from any single row, column or
    total; it does not claim to stop every combination of several equations.
    """
    hidden = {k for k, n in counts.items() if is_small(n)}
    changed = True
    while changed:
        changed = False
        for members in equations:
            inside = [k for k in members if k in hidden]
            if len(inside) != 1:
                continue
            total = members[-1]
            candidates = [k for k in members if k not in hidden]
            if not candidates:
                continue
            pick = min(candidates, key=lambda k: (k == total, counts[k] == 0, counts[k], str(k)))
            hidden.add(pick)
            changed = True
    return hidden


class Cells:
    """Every published count of a group of linked tables, and how they add up.

    Tables register their cells and equations here; ``resolve`` decides once
    for all of them what is hidden, so a cell cannot be recovered through a
    total published in another table of the group.
    """

    def __init__(self) -> None:
        self.counts: dict = {}
        self.equations: list[list] = []
        self.hidden: set | None = None

    def grid(self, name: str, rows: list, columns: list, values: dict,
             row_totals: bool = True, column_totals: bool = True) -> None:
        """Cells (name, row, column) with optional (name, row, TOTAL) and (name, TOTAL, column)."""
        for r in rows:
            for c in columns:
                self.counts[(name, r, c)] = int(values.get((r, c), 0))
        if row_totals:
            for r in rows:
                self.counts[(name, r, TOTAL)] = sum(self.counts[(name, r, c)] for c in columns)
                self.equations.append([(name, r, c) for c in columns] + [(name, r, TOTAL)])
        if column_totals:
            for c in columns + ([TOTAL] if row_totals else []):
                self.counts[(name, TOTAL, c)] = sum(self.counts[(name, r, c)] for r in rows)
                self.equations.append([(name, r, c) for r in rows] + [(name, TOTAL, c)])
            if row_totals:
                self.equations.append([(name, TOTAL, c) for c in columns] + [(name, TOTAL, TOTAL)])

    def sums_to(self, parts: list, total) -> None:
        self.equations.append(list(parts) + [total])

    def resolve(self) -> set:
        self.hidden = protect(self.counts, self.equations)
        return self.hidden

    def is_hidden(self, cell) -> bool:
        if self.hidden is None:
            self.resolve()
        return cell in self.hidden

    def show(self, cell) -> str:
        """"<11" for a small count, "suppressed" for a complementary one, else the count."""
        n = self.counts[cell]
        if is_small(n):
            return suppressed_label()
        return WITHHELD if self.is_hidden(cell) else str(n)


def rate_cell(value: float | None, events: int, hidden: bool, fmt: str = "{:.2f}") -> tuple[str, bool]:
    """A rate and whether it is unstable: withheld with its counts, flagged under 20 events."""
    if hidden:
        return WITHHELD, False
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_APPLICABLE, False
    return fmt.format(value), events < UNSTABLE_EVENTS

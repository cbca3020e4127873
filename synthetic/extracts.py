"""Writing each contract's file: values rendered as the contract says, the file appearing only when complete."""

from __future__ import annotations

import csv
import re
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np

from leadhub.core.contracts import Column, Contract
from leadhub.core.files import atomic_write
from synthetic.arrays import _date, _day, _obj
from synthetic.parameters import NULL_DAY


TABLE_FIRST, TABLE_LAST = date(1940, 1, 1), date(2030, 12, 31)


_TIME_DIRECTIVE = re.compile(r"%[HIMSpf]")


@cache
def _day_table(fmt: str) -> np.ndarray:
    """Every day of TABLE_FIRST..TABLE_LAST formatted once, so formatting is an array lookup."""
    first = _day(TABLE_FIRST)
    return _obj(_date(first + i).strftime(fmt) for i in range(_day(TABLE_LAST) - first + 1))


@cache
def _minute_table(fmt: str) -> np.ndarray:
    base = datetime(2000, 1, 1)
    return _obj((base + timedelta(minutes=m)).strftime(fmt) for m in range(1440))


def _format_days(fmt: str, days: np.ndarray) -> list:
    days = np.asarray(days, dtype=np.int64)
    out = np.full(len(days), None, dtype=object)
    ok = days != NULL_DAY
    out[ok] = _day_table(fmt)[days[ok] - _day(TABLE_FIRST)]
    return out.tolist()


def _format_minutes(fmt: str, minutes: np.ndarray) -> list:
    """Timestamps held as minutes since 1970; split the format into its date and time halves."""
    minutes = np.asarray(minutes, dtype=np.int64)
    out = np.full(len(minutes), None, dtype=object)
    ok = minutes != NULL_DAY
    m = minutes[ok]
    cut = _TIME_DIRECTIVE.search(fmt)
    if cut and not re.search(r"%[^HIMSpf%]", fmt[cut.start():]):
        date_part = _day_table(fmt[:cut.start()])[m // 1440 - _day(TABLE_FIRST)]
        out[ok] = date_part + _minute_table(fmt[cut.start():])[m % 1440]
    else:  # a format that mixes date and time directives: slow but correct
        epoch = datetime(1970, 1, 1)
        out[ok] = [(epoch + timedelta(minutes=int(v))).strftime(fmt) for v in m]
    return out.tolist()


class _AtomicCsv:
    """A CSV written as ``name.part`` and renamed when complete, so a watcher never sees half a file.

    The file stays open across blocks, so the ``atomic_write`` context is held in an ExitStack:
    ``commit`` leaves it normally (fsync, rename, fsync of the folder), ``abort`` leaves it with
    the exception in flight (the ``.part`` file is removed).
    """

    def __init__(self, path: Path, header: list[str] | None, delimiter: str = ",",
                 quotechar: str = '"', encoding: str = "utf-8"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        self._file = self._stack.enter_context(atomic_write(
            self.path, text=True, tmp=self.path.with_name(self.path.name + ".part"),
            encoding=encoding, newline=""))
        self._csv = csv.writer(self._file, delimiter=delimiter, quotechar=quotechar,
                               lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self.rows = 0
        if header is not None:
            self._csv.writerow(header)

    def write_columns(self, columns: list[list]) -> None:
        if columns and len(columns[0]):
            self._csv.writerows(zip(*columns))
            self.rows += len(columns[0])

    def commit(self) -> None:
        self._stack.close()

    def abort(self, exc: BaseException) -> None:
        """Give up the file because of ``exc``; a file already committed stays."""
        self._stack.__exit__(type(exc), exc, exc.__traceback__)


class _ExtractWriter(_AtomicCsv):
    """One contract's file: columns, order, header, delimiter and date formats all from the contract."""

    def __init__(self, directory: Path, contract: Contract, stamp: str):
        fmt = contract.format
        name = contract.file_pattern.replace("*", stamp)
        super().__init__(directory / contract.agency / name,
                         contract.column_names if fmt.header else None,
                         fmt.delimiter, fmt.quotechar, fmt.encoding)
        self.contract = contract

    def write(self, ident: dict[str, np.ndarray], plain: dict[str, np.ndarray]) -> int:
        """Identifier columns are filled by their role, the others by name; returns rows written."""
        first = self.rows
        columns = []
        for col in self.contract.columns:
            source = ident.get(col.identifier) if col.identifier else plain.get(col.name)
            if source is None:
                raise KeyError(f"the generator has no values for {self.contract.name}.{col.name}")
            columns.append(_render(col, source))
        self.write_columns(columns)
        return self.rows - first


def _render(col: Column, values) -> list:
    if col.type == "date":
        return _format_days(col.formats[0], values)
    if col.type == "timestamp":
        return _format_minutes(col.formats[0], values)
    return np.asarray(values).tolist() if col.type == "integer" else list(values)

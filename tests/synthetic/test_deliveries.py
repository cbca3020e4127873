"""The generated county split into two monthly deliveries, read back from disk."""

from __future__ import annotations

import csv
from datetime import date, datetime

from leadhub.core.contracts import load_contracts
from synthetic import generate
from synthetic.deliveries import split_last_month

CONTRACTS = load_contracts()
LAST_MONTH = date(2024, 12, 1)   # DATA_END is 2024-12-31: the later delivery is December


def _rows(path, contract):
    with open(path, encoding=contract.format.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=contract.format.delimiter, quotechar=contract.format.quotechar)
        header = next(reader)
        return header, [tuple(r) for r in reader]


def _day(value: str, fmt: str) -> date:
    return datetime.strptime(value, fmt).date()


def test_split_keeps_every_row_once_and_dates_each_side_by_its_month(tmp_path):
    generate(tmp_path / "inbox", tmp_path / "answers", people=600, seed=3)
    whole = {name: _rows(tmp_path / "inbox" / c.agency / c.file_pattern.replace("*", "20241231"), c)
             for name, c in CONTRACTS.items()}
    counts = split_last_month(tmp_path / "inbox", tmp_path / "later")

    for name, c in CONTRACTS.items():
        header, rows = whole[name]
        earlier_path = tmp_path / "inbox" / c.agency / c.file_pattern.replace("*", "20241130")
        later_path = tmp_path / "later" / c.agency / c.file_pattern.replace("*", "20241231")
        assert not (tmp_path / "inbox" / c.agency / later_path.name).exists(), name
        e_header, earlier = _rows(earlier_path, c)
        l_header, later = _rows(later_path, c) if later_path.exists() else (header, [])
        assert e_header == l_header == header
        assert counts[name] == {"earlier": len(earlier), "later": len(later)}
        col = c.event_column
        at, fmt = header.index(col.name), col.formats[0]
        # Earlier: every dated row before December; later: December only (incremental) or all.
        assert all(_day(r[at], fmt) < LAST_MONTH for r in earlier if r[at]), name
        if c.history == "full":
            assert sorted(later) == sorted(rows), name
            assert set(earlier) <= set(later)
        else:
            assert all(_day(r[at], fmt) >= LAST_MONTH for r in later), name
            # Every generated row is in exactly one of the two files, in the generated order.
            assert sorted(earlier + later) == sorted(rows), name
            assert earlier == [r for r in rows if r not in set(later)]
    # 600 people over five years: December holds some arrests and bookings, but not most of them.
    for name in ("police_arrests", "jail_bookings"):
        assert 0 < counts[name]["later"] < counts[name]["earlier"], name

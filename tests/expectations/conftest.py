"""Police referral files with raw identifiers, dropped into a real inbox for intake tests.

Tests get these helpers through the ``deliveries`` fixture (the suite imports by path, so a
plain helper module would not be importable).
"""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta

import duckdb
import pytest

from leadhub.core.contracts import load_contracts

REFERRALS = load_contracts()["police_referrals"]
# Planted raw identifiers: none may ever appear in validation results, Data Docs or logs.
PLANTED_NAME = "ZEBEDIAH"
PLANTED_SURNAME = "QUILLFEATHER"
PLANTED_SSN = "987-65-4329"
PLANTED_PERSON_ID = "PID-77331"


def referral_rows(n: int, start: int = 0, **override) -> list[dict]:
    """``n`` valid referral rows; ``override`` maps a column to a value or to a function of i."""
    rows = []
    for i in range(start, start + n):
        row = {
            "referral_id": f"R{i:06d}", "person_id": f"P{i:06d}", "last_name": f"Surname{i}",
            "first_name": f"Given{i}", "dob": (date(1980, 1, 1) + timedelta(days=i)).isoformat(),
            "ssn": f"{100 + i % 800:03d}-{10 + i % 89:02d}-{1000 + i:04d}", "sex": "MFX"[i % 3],
            "race": "WHITE", "ethnicity": "UNKNOWN",
            "referral_date": (date(2024, 1, 1) + timedelta(days=i % 300)).isoformat(),
            "referral_type": "social_contact", "offense_category": "drug",
            "precinct": "NORTH", "officer_id": f"B{i % 40:04d}",
        }
        for column, value in override.items():
            row[column] = value(i) if callable(value) else value
        rows.append(row)
    return rows


def to_csv(rows: list[dict]) -> str:
    lines = [",".join(REFERRALS.column_names)]
    lines += [",".join(str(row[c]) for c in REFERRALS.column_names) for row in rows]
    return "\n".join(lines) + "\n"


def drop(settings, name: str, text: str, agency: str = "police"):
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text(text, encoding="utf-8")
    os.utime(path, (1, 1))  # old enough to count as a complete file
    return path


def query(settings, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def deliveries():
    """This module: ``referral_rows``, ``to_csv``, ``drop``, ``query`` and the planted values."""
    return sys.modules[__name__]

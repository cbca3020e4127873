"""Arrow chunks (what intake hands over) pseudonymize exactly as lists do, repeated people and all."""

from datetime import date, datetime

import pyarrow as pa

from leadhub.core.contracts import load_contracts
from leadhub.core.readers import ARROW_TYPES
from transforms.pseudonymize import Pseudonymizer, _distinct_rows


def _bookings(n: int) -> dict[str, list]:
    # 3 people over n rows, one with no SSN, one born on Feb 29; booked on the day before,
    # on and after their birthday, so the age steps
    people = [("J1", "Quill", "Ada", date(1980, 2, 29), "123-45-6780"),
              ("J2", "García-López", "Bill", date(1990, 7, 1), None),
              ("J3", "Quill", "Ada", date(1980, 2, 29), "123-45-6780")]  # same identifiers, other id
    events = [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1), date(2024, 6, 30), date(2024, 7, 1)]
    contract = load_contracts()["jail_bookings"]
    cols = {c.name: [None] * n for c in contract.columns}
    for i in range(n):
        inmate, last, first, dob, ssn = people[i % 3]
        cols["inmate_id"][i], cols["last_name"][i], cols["first_name"][i] = inmate, last, first
        cols["dob"][i], cols["ssn"][i] = dob, ssn
        e = events[i % 5]
        cols["booking_ts"][i] = datetime(e.year, e.month, e.day, 10, 30)
        cols["booking_id"][i], cols["charge_seq"][i] = f"B{i}", 1
    return cols


def test_arrow_chunks_give_the_lists_results(master_key):
    contract = load_contracts()["jail_bookings"]
    lists = _bookings(15)
    arrays = {c.name: pa.array(lists[c.name], ARROW_TYPES[c.type]) for c in contract.columns}
    p = Pseudonymizer(master_key)
    from_lists = p.columns(contract, lists)
    from_arrays = p.columns(contract, arrays)
    assert set(from_lists) == set(from_arrays)
    for column, values in from_lists.items():
        got = from_arrays[column]
        assert (got.to_pylist() if isinstance(got, pa.Array) else got) == values, column
    # Rows cycle people by 3 and days by 5: row 0 Ada (born 1980-02-29) on 2024-02-28 is 43;
    # row 1 Bill (1990-07-01) on 02-29 is 33; rows 2 and 3 Ada on 03-01 and 06-30 are 44;
    # row 4 Bill on 07-01 is 34.
    assert from_lists["age_at_event"][:5] == [43, 33, 44, 44, 34]
    # J1 and J3 share every identifier but the person id: one person token each, the rest equal
    assert from_lists["person_token"][0] != from_lists["person_token"][2]
    assert from_lists["name_dob_token"][0] == from_lists["name_dob_token"][2]
    assert from_lists["ssn_token"][1] is None


def test_arrow_tokens_are_dictionary_arrays_with_plain_nulls(master_key):
    """Intake stages tokens and encodings as indices into a chunk's distinct values; a missing
    value is a NULL index, so null counts (the history checks) and DuckDB see a plain NULL."""
    contract = load_contracts()["jail_bookings"]
    lists = _bookings(15)
    arrays = {c.name: pa.array(lists[c.name], ARROW_TYPES[c.type]) for c in contract.columns}
    out = Pseudonymizer(master_key).columns(contract, arrays)
    ssn = out["ssn_token"]
    assert pa.types.is_dictionary(ssn.type)
    assert ssn.null_count == 5 and ssn.dictionary.null_count == 0
    assert len(ssn.dictionary) == 1  # J1 and J3 share their SSN; J2 has none
    assert out["key_id"].dictionary.to_pylist() == [Pseudonymizer(master_key).key_id]


def test_distinct_rows_when_combined_codes_would_overflow():
    """Six columns of 2,000 distinct values overflow int64 as one number: renumbered on the way,
    rows still share a group exactly when every value (NULL included) is the same."""
    n = 2000
    rows = [tuple(None if (i + c) % 97 == 0 else f"{c}:{i}" for c in range(6)) for i in range(n)]
    rows[1500], rows[1900] = rows[3], rows[97]  # repeats, one of them with a NULL
    first, groups = _distinct_rows([pa.array(list(col)) for col in zip(*rows)], n)
    numbered = {}
    for row, group in zip(rows, groups.tolist()):
        assert numbered.setdefault(row, group) == group
    assert len(set(numbered.values())) == len(numbered) == n - 2
    assert [rows[i] for i in first.to_pylist()] == sorted(numbered, key=numbered.get)

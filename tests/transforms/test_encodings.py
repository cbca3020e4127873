import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from transforms.encodings import (Encoder, canonical, encode_frame, field_width, from_binary, from_text,
                                  load_settings, read_mapping, split_initial, to_text)
from transforms.link import token_levels

SETTINGS = load_settings()
KEY = bytes(range(32))  # fixed, so Dice values do not vary between runs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    inter = int(np.bitwise_count(a & b).sum())
    return 2 * inter / int(np.bitwise_count(a).sum() + np.bitwise_count(b).sum())


def test_typing_errors_keep_names_similar_and_other_names_apart():
    enc = Encoder(KEY, SETTINGS)
    name = lambda v: enc.encode_one("last_name", canonical(SETTINGS["fields"]["last_name"], v))  # noqa: E731
    assert (name("Garcia-Lopez") == name("GARCIA LOPEZ")).all()
    assert dice(name("Johnson"), name("Jonhson")) >= 0.55
    assert dice(name("Johnson"), name("Johnsen")) >= 0.65
    assert dice(name("Johnson"), name("Okafor")) < 0.35


def test_encodings_depend_on_the_key():
    a, b = Encoder(os.urandom(32), SETTINGS), Encoder(os.urandom(32), SETTINGS)
    assert not (a.encode_one("last_name", "SMITH") == b.encode_one("last_name", "SMITH")).all()
    assert a.encode_one("ssn", "123456780")[0] != b.encode_one("ssn", "123456780")[0]


def test_digit_fields_know_one_edit_and_swapped_day_and_month():
    enc = Encoder(KEY, SETTINGS)

    def level(field, x, y):
        fs = SETTINGS["fields"][field]
        a = enc.encode(field, [canonical(fs, x)])
        b = enc.encode(field, [canonical(fs, y)])
        missing, exact, near = token_levels(a, b, fs["kind"])
        return "missing" if missing[0] else "exact" if exact[0] else "near" if near[0] else "else"

    assert level("ssn", "123-45-6780", "123456780") == "exact"
    assert level("ssn", "123-45-6780", "123-45-6790") == "near"      # one substitution
    assert level("ssn", "123-45-6780", "123-54-6780") == "near"      # adjacent transposition
    assert level("ssn", "123-45-6780", "487-65-4320") == "else"
    assert level("ssn", "123-45-6780", "000-12-3456") == "missing"   # impossible SSN
    assert level("dob", "1980-02-03", "1980-03-02") == "near"        # day and month swapped
    assert level("dob", "1980-02-03", "1908-02-03") == "near"
    assert level("dob", "1980-02-03", "1975-11-23") == "else"


def test_text_storage_round_trips_and_missing_is_null():
    enc = Encoder(KEY, SETTINGS)
    rows = enc.encode("first_name", ["WILLIAM", None, "ADA"])
    stored = to_text(rows)
    assert stored[1] is None and all(isinstance(s, str) for s in (stored[0], stored[2]))
    assert (from_text(stored, rows.shape[1]) == rows).all()


def test_binary_storage_reads_as_text_does_and_a_wrong_length_is_missing():
    enc = Encoder(KEY, SETTINGS)
    rows = enc.encode("first_name", ["WILLIAM", None, "ADA", "BO"])
    width = rows.shape[1]
    raw = [r.astype("<u8").tobytes() if r.any() else None for r in rows]
    assert (from_binary(pa.array(raw, pa.binary()), width) == rows).all()
    assert (from_binary(pa.array(raw, pa.binary()).slice(1), width) == rows[1:]).all()  # a batch's slice
    raw[2] = b"short"  # not back to back in the buffer any more: read value by value
    expected = rows.copy()
    expected[2] = 0
    assert (from_binary(pa.array(raw, pa.binary()), width) == expected).all()
    assert from_binary(pa.array([None, None], pa.binary()), width).shape == (2, width)
    assert not from_binary(pa.array([None, None], pa.binary()), width).any()


def test_given_and_surname_filters_share_one_domain_so_swapped_names_compare():
    enc = Encoder(KEY, SETTINGS)
    as_first = enc.encode_one("first_name", canonical(SETTINGS["fields"]["first_name"], "Quill"))
    as_last = enc.encode_one("last_name", canonical(SETTINGS["fields"]["last_name"], "Quill"))
    assert (as_first == as_last).all() and as_first.any()


# -- new evidence: placeholders, nicknames, middle names, sentinels --------------------------------

def encoded(rows: dict[str, list], mapping: dict[str, object], key: bytes = KEY) -> dict[str, np.ndarray]:
    """Encode a small clear-text frame the way ``leadhub link`` does."""
    _, fields = read_mapping({"fields": mapping}, SETTINGS)
    return encode_frame(pd.DataFrame(rows, dtype="string"), fields, Encoder(key, SETTINGS))


def tokens(row: np.ndarray) -> set[int]:
    return set(row[row != 0].tolist())


def test_placeholder_names_encode_as_missing():
    out = encoded({"first": ["Unknown", "FNU", "Baby Girl", "J.", "Declined", "Ada", "Unk Q"],
                   "last": ["Resident", "LNU", "Okafor", "Quill", "Last Name", "N/A", "Lee"]},
                  {"first_name": "first", "last_name": "last"})
    # Every placeholder (and the single letter) is an all-zero row; real names are not.
    assert out["first_name"].any(axis=1).tolist() == [False, False, False, False, False, True, False]
    assert out["first_name_canon"].any(axis=1).tolist() == [False, False, False, False, False, True, False]
    # "N/A" is kept as a surname: NA is a real (Korean) surname, documented in the reference list.
    assert out["last_name"].any(axis=1).tolist() == [False, False, True, True, False, True, True]


def test_john_doe_is_missing_as_a_pair_but_doe_alone_is_a_surname():
    out = encoded({"first": ["John", "Jane", "Richard"], "last": ["Doe", "DOE", "Doe"]},
                  {"first_name": "first", "last_name": "last"})
    assert out["first_name"].any(axis=1).tolist() == [False, False, True]
    assert out["last_name"].any(axis=1).tolist() == [False, False, True]


@pytest.mark.parametrize("nick, formal", [("Bill", "William"), ("Peggy", "Margaret"), ("Jim", "James"),
                                          ("Pepe", "José")])
def test_nicknames_share_a_canonical_token_from_the_dataset(nick, formal):
    out = encoded({"first": [nick, formal, "Zebediah"]}, {"first_name": "first"})
    canon = out["first_name_canon"]
    assert canon.shape[1] == field_width(SETTINGS, "first_name_canon") == 20
    assert tokens(canon[0]) & tokens(canon[1])          # nickname and formal name agree
    assert not tokens(canon[0]) & tokens(canon[2])      # an unrelated name does not
    assert not tokens(canon[1]) & tokens(canon[2])
    # The Bloom filters still tell the spellings apart (the exact level stays exact).
    assert not (out["first_name"][0] == out["first_name"][1]).all()


def test_canonical_token_rows_do_not_reveal_how_many_formal_names_a_name_has():
    # CHRIS has 18 formal names in the dataset, ZEBEDIAH none: both rows are 20 non-zero tokens.
    canon = encoded({"first": ["Chris", "Zebediah", "Unknown"]}, {"first_name": "first"})["first_name_canon"]
    assert (canon[0] != 0).all() and (canon[1] != 0).all() and not canon[2].any()
    assert len(tokens(canon[0])) == len(tokens(canon[1])) == 20
    # Padding never makes two different names agree.
    assert not tokens(canon[0]) & tokens(canon[1])


def test_canonical_tokens_are_keyed():
    a = encoded({"first": ["William"]}, {"first_name": "first"}, key=bytes(32))["first_name_canon"]
    b = encoded({"first": ["William"]}, {"first_name": "first"}, key=bytes(range(1, 33)))["first_name_canon"]
    assert tokens(a[0]) and not tokens(a[0]) & tokens(b[0])


def test_middle_initial_agrees_with_the_full_middle_name_at_the_initial_level():
    out = encoded({"first": ["Ada", "Ada", "Ada", "Ada", "Ada J", "Ada"],
                   "middle": ["J", "James", "John", "", "", "NMN"]},
                  {"first_name": "first", "middle_name": "middle"})
    filters, initials = split_initial(out["middle_name"])
    present = filters.any(axis=1).tolist()
    # 0 "J": initial only (no filter); 1 "James" and 2 "John": full names; 3 none; 4 initial from
    # the given-name field ("Ada J"); 5 "NMN" is a placeholder: missing.
    assert present == [False, True, True, False, False, False]
    assert initials[0] == initials[1] == initials[2] == initials[4] != 0
    assert initials[3] == initials[5] == 0 and not out["middle_name"][3].any()
    # James and John share the initial but not the name: their filters are far apart.
    d = dice(filters[1], filters[2])
    assert d < 0.5, d


def test_a_middle_name_in_the_given_name_field_agrees_with_a_recorded_middle_name():
    out = encoded({"first": ["Mary Ann", "Mary", "Maryann"], "middle": ["", "Ann", ""]},
                  {"first_name": "first", "middle_name": "middle"})
    assert (out["first_name"][0] == out["first_name"][1]).all()
    assert (out["middle_name"][0] == out["middle_name"][1]).all() and out["middle_name"][0].any()
    # Written as one word, "Maryann" still shares the joined form MARYANN with "Mary Ann".
    assert tokens(out["first_name_canon"][0]) & tokens(out["first_name_canon"][2])


def test_missing_and_sentinel_birth_dates_and_ssns_are_all_zero_rows():
    dob = pd.DataFrame({"dob": ["1900-01-01", "01/01/1900", "0001-01-01", "1899-12-31", "", "1980-02-03"]})
    _, fields = read_mapping({"fields": {"dob": "dob"}}, SETTINGS)
    rows = encode_frame(dob.astype("string"), fields, Encoder(KEY, SETTINGS))["dob"]
    assert rows.any(axis=1).tolist() == [False, False, False, False, False, True]
    ssn = encoded({"ssn": ["000-00-0000", "999999999", "999-99-9999", "", "123-45-6780"]}, {"ssn": "ssn"})["ssn"]
    assert ssn.any(axis=1).tolist() == [False, False, False, False, True]
    # Missing is NULL in storage, so it can never agree with anything.
    assert to_text(ssn)[:4] == [None] * 4


def test_no_address_and_filler_numbers_encode_as_missing():
    out = encoded({"addr": ["Homeless", "n/a", "No Fixed Address", "General Delivery", "77 S Washington St"],
                   "zip": ["00000", "99999", "", "98101", "98104"],
                   "phone": ["000-000-0000", "(999) 999-9999", "206-555-0100", "", "1111111111"]},
                  {"address": "addr", "postcode": "zip", "phone": "phone"})
    # Everyone without an address shares "Homeless": agreeing on it is no evidence.
    assert out["address"].any(axis=1).tolist() == [False, False, False, False, True]
    assert out["postcode"].any(axis=1).tolist() == [False, False, False, True, True]
    assert out["phone"].any(axis=1).tolist() == [False, False, True, False, False]
    # Short repeated digits are real (house number 111), long ones are fillers.
    nums = encoded({"n": ["111", "11111", "5"]}, {"street_number": "n"})["street_number"]
    assert nums.any(axis=1).tolist() == [True, False, True]


def test_unknown_mapping_field_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(ValueError) as err:
        read_mapping({"fields": {"first_name": "f", "middle_initial": "m"}}, SETTINGS)
    message = str(err.value)
    assert "\n" not in message and "'middle_initial'" in message
    for known in ("first_name", "middle_name", "last_name", "dob", "ssn"):
        assert known in message
    # A derived field is computed from first_name, never mapped.
    with pytest.raises(ValueError, match="known fields"):
        read_mapping({"fields": {"first_name_canon": "f"}}, SETTINGS)
    assert read_mapping({"id": "rec", "fields": {"middle_name": "mid"}}, SETTINGS) == \
        ("rec", {"middle_name": {"columns": ["mid"]}})


def test_intake_and_leadhub_link_encode_the_same_person_identically():
    """Staging columns (intake) and ``encode_frame`` (``leadhub link``) share one set of name rules."""
    from datetime import date

    from leadhub.core.contracts import load_contracts
    from leadhub.core.keys import MasterKey
    from leadhub.core.warehouse import ENCODING_COLUMNS, staging_columns
    from transforms.pseudonymize import Pseudonymizer

    contract = load_contracts()["police_referrals"]
    firsts, lasts = ["Mary Ann", "John", "Bill", "FNU"], ["Lee", "Doe", "Smith", "Okafor"]
    dobs = [date(1980, 2, 3), date(1900, 1, 1), date(1975, 1, 1), None]
    cols = {c.name: [date(2022, 5, 1)] * 4 if c.type == "date" else [f"{c.name}-{i}" for i in range(4)]
            for c in contract.plain_columns}
    roles = {c.identifier: c.name for c in contract.identifier_columns}
    cols.update({roles["first_name"]: firsts, roles["last_name"]: lasts, roles["dob"]: dobs,
                 roles["ssn"]: ["123-45-6780", "", "999-99-9999", None],
                 roles["agency_person_id"]: ["P1", "P2", "P3", "P4"]})
    p = Pseudonymizer(MasterKey(bytes(range(32))))
    staged = p.columns(contract, cols)
    # Staging carries the derived encodings wherever a given name is recorded.
    names = {n for n, _ in staging_columns(contract)}
    assert {"first_name_canon_enc", "middle_name_enc"} <= names <= set(staged) | {"_batch_id", "_row_number"}
    frame = pd.DataFrame({"f": firsts, "l": lasts, "d": [d.isoformat() if d else "" for d in dobs],
                          "s": ["123-45-6780", "", "999-99-9999", ""]}, dtype="string")
    _, fields = read_mapping({"fields": {"first_name": "f", "last_name": "l", "dob": "d", "ssn": "s"}}, SETTINGS)
    linked = encode_frame(frame, fields, p.encoder)
    for field, rows in linked.items():
        assert to_text(rows) == staged[ENCODING_COLUMNS[field]], field
    # John Doe (row 1) and FNU (row 3) have no given name; 1900-01-01 and 999-99-9999 are missing.
    assert [v is None for v in staged["first_name_enc"]] == [False, True, False, True]
    assert [v is None for v in staged["dob_enc"]] == [False, True, False, True]
    assert [v is None for v in staged["middle_name_enc"]] == [False, True, True, True]

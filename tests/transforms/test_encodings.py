import os

import numpy as np

from transforms.encodings import Encoder, canonical, from_text, load_settings, to_text
from transforms.link import Encoded, score_pairs, token_levels

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


def test_swapped_first_and_last_names_still_score_as_a_match():
    enc = Encoder(KEY, SETTINGS)

    def rec(first, last, dob):
        fields = {"first_name": enc.encode("first_name", [canonical(SETTINGS["fields"]["first_name"], first)]),
                  "last_name": enc.encode("last_name", [canonical(SETTINGS["fields"]["last_name"], last)]),
                  "dob": enc.encode("dob", [canonical(SETTINGS["fields"]["dob"], dob)])}
        return Encoded(fields, 1)
    i = j = np.array([0])
    straight = score_pairs(rec("Ada", "Quill", "1975-01-01"), rec("Ada", "Quill", "1975-01-01"), i, j, SETTINGS)
    swapped = score_pairs(rec("Ada", "Quill", "1975-01-01"), rec("Quill", "Ada", "1975-01-01"), i, j, SETTINGS)
    other = score_pairs(rec("Ada", "Quill", "1975-01-01"), rec("Ben", "Okafor", "1975-01-01"), i, j, SETTINGS)
    assert swapped[0] == straight[0] >= SETTINGS["threshold"] > other[0]

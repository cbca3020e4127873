"""Pinned pseudonyms: the same key and input must give byte-identical tokens and encodings.

Tokens and encodings are joined with everything loaded before; a token that
changes for the same key and value silently splits one person in two, and only
a key rotation (which re-keys everything, transforms/rotate.py) may change them.
So the outputs for a fixed key and a fixed set of awkward inputs are pinned
here as digests, computed once with the straightforward per-row implementation.
Any optimization of transforms/pseudonymize.py, normalize.py or encodings.py
(caches, batching) must leave every digest unchanged.

When a digest fails, the assertion names the contract and column (or the
field / normalization function) that drifted.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from leadhub.core.contracts import load_contracts
from leadhub.core.keys import MasterKey
from transforms import normalize
from transforms.encodings import Encoder, canonical, encode_frame, load_settings, to_text
from transforms.pseudonymize import Pseudonymizer

KEY = MasterKey(bytes(range(32)))
OTHER_KEY = MasterKey(bytes(range(1, 33)))

# Awkward spellings: accents, compatibility characters (full-width, ligatures), letters
# without a decomposition, suffix-only names, nicknames, blanks and missing values.
NAMES = ["García-López", "GARCIA LOPEZ", "O'Brien Jr.", "  de la Cruz ", "Jr", "III", "Bill",
         "william", "Ｂｉｌｌ", "ﬁnn", "Zoë", "Nguyễn", "", None, "   ", "Mary-Kate", "ST. JOHN",
         "李", "Ørsted", "Łukasz", "d'Arcy", "Jean\tPaul", "x", "Smith", "smith", "SMITH II",
         "Liz", "Pepe", "José María", "Ann-Marie", "-", "'", "..", "Jr.", "A.B.", "Van der Berg"]
DOBS = [date(1980, 2, 3), date(1980, 3, 2), None, date(2000, 2, 29), date(1900, 1, 1),
        date(1975, 12, 12), date(1999, 12, 31), date(1985, 7, 14), date(1963, 11, 5)]
SSNS = ["123-45-6780", "123456780", "000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567",
        "123-45-0000", "111111111", "123456789", "078-05-1120", "12345678", "1234567890", "",
        None, " 219 09 9999", "219-09-9999", "２１９-09-9998", "abc", "123 45 6781"]
ADDRESSES = ["123 Main St., Apt #4", "123  main st apt 4", "Calle Señor 5", "", None, "   ",
             "P.O. Box 7", "Shelter — 5th Ave", "ﬂat 2", "1 Rue de l'Église", "!!!"]
PHONES = ["+1 (206) 555-0100", "206.555.0100", "555-0100", "12065550100", "22065550100", "",
          None, "206 555 0199 ext 4", "(206)5550100"]
PERSON_IDS = ["P0001", " P0001 ", "", None, "  ", "123", "00123", "P0002", "p0001"]
EVENTS = [date(2022, 5, 1), datetime(2022, 2, 3, 0, 0), datetime(2020, 2, 28, 23, 59), None,
          date(2020, 2, 29), date(2021, 3, 1), datetime(2024, 12, 31, 12)]
ROWS = 150  # more rows than any list, with different strides, so values repeat in new combinations


def _pick(values: list, i: int, stride: int):
    return values[(i * stride + stride // 2) % len(values)]


def chunk(contract, rows: int = ROWS, offset: int = 0) -> dict[str, list]:
    """Typed column lists for ``contract``, as the readers hand them to the pseudonymizer."""
    by_role = {"agency_person_id": (PERSON_IDS, 1), "last_name": (NAMES, 7), "first_name": (NAMES, 5),
               "dob": (DOBS, 2), "ssn": (SSNS, 3), "address": (ADDRESSES, 4), "phone": (PHONES, 5)}
    cols = {}
    for c in contract.columns:
        if c.identifier:
            values, stride = by_role[c.identifier]
            cols[c.name] = [_pick(values, i, stride) for i in range(offset, offset + rows)]
        elif c.name == contract.age_at:
            cols[c.name] = [_pick(EVENTS, i, 3) for i in range(offset, offset + rows)]
        else:
            cols[c.name] = [f"{c.name}-{i}" for i in range(offset, offset + rows)]
    return cols


def digest(values) -> str:
    if isinstance(values, np.ndarray):
        data = str(values.shape).encode() + values.astype("<u8").tobytes()
    else:
        data = json.dumps(values, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]


CONTRACTS = ("jail_bookings", "treatment_clients", "police_referrals", "prosecutor_cases")
SETTINGS = load_settings()
# Raw strings for every linkage field (the `leadhub link` path: strings in, formats per field).
FIELD_VALUES = {
    "first_name": NAMES, "last_name": NAMES, "ssn": SSNS, "address": ADDRESSES, "address_2": ADDRESSES,
    "city": ["Seattle", "SEATTLE ", "Saint-Étienne", "", None, "St. Paul"],
    "phone": PHONES, "id_number": ["12345", "A-123-456", "", None, "000000000", "1234567890"],
    "sex": ["M", "f", "female", "", None, "X"], "state": ["WA", "wa", " Wash. ", "", None],
    "postcode": ["98101", "98101-1234", "9810", "", None], "street_number": ["123", "12a", "1234567", "", None],
    "dob": ["1980-02-03", "1980-03-02", "20000229", "02/29/2000", "13.01.1990", "2001/1/2", "1980-02-30",
            "", None, " 1975-12-12 ", "junk"],
}
NORMALIZERS = {"surname": normalize.surname, "given_name": normalize.given_name,
               "name_parts": normalize.name_parts, "clean_text": normalize.clean_text,
               "ssn": normalize.ssn, "phone": normalize.phone, "sex": normalize.sex}


def outputs(p: Pseudonymizer) -> dict[str, str]:
    """Digest of every pseudonymized output for the fixed inputs, by a readable name."""
    contracts = load_contracts()
    out = {}
    for name in CONTRACTS:
        contract = contracts[name]
        cols = p.columns(contract, chunk(contract))
        for column in sorted(set(cols) - {c.name for c in contract.plain_columns}):
            out[f"{name}.{column}"] = digest(cols[column])
    enc = p.encoder
    for field, values in FIELD_VALUES.items():
        rows = enc.encode(field, [canonical(SETTINGS["fields"][field], v) for v in values])
        out[f"encode.{field}"] = digest(rows)
        out[f"to_text.{field}"] = digest(to_text(rows))
    frame = pd.DataFrame({"last": NAMES, "first": list(reversed(NAMES)),
                          "dob": [(FIELD_VALUES["dob"] * 4)[i] for i in range(len(NAMES))]})
    framed = encode_frame(frame, {"last_name": {"columns": ["last"]}, "first_name": {"columns": ["first", "last"]},
                                  "dob": {"columns": ["dob"], "format": "%Y-%m-%d"}}, enc)
    for field, rows in sorted(framed.items()):
        out[f"encode_frame.{field}"] = digest(rows)
    for fname, fn in NORMALIZERS.items():
        inputs = NAMES + SSNS + ADDRESSES + PHONES
        out[f"normalize.{fname}"] = digest([fn(v) for v in inputs])
    out["normalize.age_on"] = digest([normalize.age_on(d, e if not isinstance(e, datetime) else e.date())
                                      for d in DOBS for e in EVENTS])
    return out


EXPECTED = {
    "encode.address": "58f079fbaa4713e99731ef18ea8b4f6a",
    "encode.address_2": "7b2eb52a826e9bc5d05310ddb2842c6c",
    "encode.city": "d1c24412fe46c199284bf6efd3c3d647",
    "encode.dob": "a14e6ba59a2e7f3cfc911ded6dba9acb",
    "encode.first_name": "f0af394e93da4b4c0e41fb796f97c9a8",
    "encode.id_number": "5043afbcc99e64a2841ad42c2cf7373e",
    "encode.last_name": "e10bd7239173ac0a8d025ea4ddabc003",
    "encode.phone": "bb72e49129484381f0eca3dcc9bd7646",
    "encode.postcode": "4d00e663128d93828568be1cd4e8b3cf",
    "encode.sex": "7079497d5710808660daf531d8ecf6d0",
    "encode.ssn": "68530a076edad3fd29ed905b5632b6bf",
    "encode.state": "89d21da0e041d78c7820920226c15190",
    "encode.street_number": "60e404ab39485617049062a3872c837e",
    "encode_frame.dob": "1024056fa5d48f4223253a1779515647",
    "encode_frame.first_name": "8c88b6cb4558b6fd13888468e7f72a55",
    "encode_frame.first_name_canon": "5e51756943db4f40884218dcc9e21133",
    "encode_frame.last_name": "e10bd7239173ac0a8d025ea4ddabc003",
    "encode_frame.middle_name": "f9594b99e9665791b6c43e67c372c08b",
    "jail_bookings.address_token": "39b2b155e24033c69de3553df128c3b9",
    "jail_bookings.age_at_event": "6c3fef4561dd3840065670759e7a4e33",
    "jail_bookings.dob_enc": "3936cf52051c4c962099a06949aeb0db",
    "jail_bookings.first_name_canon_enc": "86f5144a1f20cc1b9c1168eafad13965",
    "jail_bookings.first_name_enc": "caf5380ba5c1d595499d536bd546f02d",
    "jail_bookings.key_id": "d3c9a965e7bcd9f7d9b10a34de3da465",
    "jail_bookings.last_name_enc": "c857943215180f840ab563a888d8a332",
    "jail_bookings.middle_name_enc": "3fb39fd66aa64a9fbb9b638f61369106",
    "jail_bookings.name_dob_token": "77bf747b2f4b10181ba558bf430df6ba",
    "jail_bookings.person_token": "100866c9bb16a554388b1bdc012063d4",
    "jail_bookings.ssn_enc": "b9e6d45f414ef9e4b971f2870e6cc196",
    "jail_bookings.ssn_token": "68fcb511d6f5e2825f9c5fbd16c5e54c",
    "normalize.age_on": "777176acc268ab52d9a23f7b5a6ddb26",
    "normalize.clean_text": "841017e24257e6c2529f14b4ea8bcbff",
    "normalize.given_name": "489bbdcd902c27bfe6458a05504ab792",
    "normalize.name_parts": "60ec6081ef5d5cdf85265ee43a3c30c2",
    "normalize.phone": "1d52e8ec4109c5cd539722c3d4ca6d64",
    "normalize.sex": "74c564ddf425480707b60fc7905c16f0",
    "normalize.ssn": "442667d9d17458eb94e5d2d6794cb165",
    "normalize.surname": "f915e130fc07f8dec7d458d122e67e8e",
    "police_referrals.age_at_event": "6c3fef4561dd3840065670759e7a4e33",
    "police_referrals.dob_enc": "3936cf52051c4c962099a06949aeb0db",
    "police_referrals.first_name_canon_enc": "86f5144a1f20cc1b9c1168eafad13965",
    "police_referrals.first_name_enc": "caf5380ba5c1d595499d536bd546f02d",
    "police_referrals.key_id": "d3c9a965e7bcd9f7d9b10a34de3da465",
    "police_referrals.last_name_enc": "c857943215180f840ab563a888d8a332",
    "police_referrals.middle_name_enc": "3fb39fd66aa64a9fbb9b638f61369106",
    "police_referrals.name_dob_token": "77bf747b2f4b10181ba558bf430df6ba",
    "police_referrals.person_token": "ef886177efbb14c82cf7ccc2524e6850",
    "police_referrals.ssn_enc": "b9e6d45f414ef9e4b971f2870e6cc196",
    "police_referrals.ssn_token": "68fcb511d6f5e2825f9c5fbd16c5e54c",
    "prosecutor_cases.age_at_event": "6c3fef4561dd3840065670759e7a4e33",
    "prosecutor_cases.dob_enc": "3936cf52051c4c962099a06949aeb0db",
    "prosecutor_cases.first_name_canon_enc": "86f5144a1f20cc1b9c1168eafad13965",
    "prosecutor_cases.first_name_enc": "caf5380ba5c1d595499d536bd546f02d",
    "prosecutor_cases.key_id": "d3c9a965e7bcd9f7d9b10a34de3da465",
    "prosecutor_cases.last_name_enc": "c857943215180f840ab563a888d8a332",
    "prosecutor_cases.middle_name_enc": "3fb39fd66aa64a9fbb9b638f61369106",
    "prosecutor_cases.name_dob_token": "77bf747b2f4b10181ba558bf430df6ba",
    "prosecutor_cases.person_token": "ca251bb7ce7f2c5cffeb1853fe1e2803",
    "prosecutor_cases.ssn_enc": "b9e6d45f414ef9e4b971f2870e6cc196",
    "prosecutor_cases.ssn_token": "68fcb511d6f5e2825f9c5fbd16c5e54c",
    "to_text.address": "601143d76a8c91fa382f41510fdc6bfe",
    "to_text.address_2": "68537ae79568f37c34d8d19ab2c932c0",
    "to_text.city": "587623db30a9872a18d8d4f9c8ba7457",
    "to_text.dob": "7b328580547686fc5550a7990ea0a018",
    "to_text.first_name": "9a45b43fd896a096103fc9f516a5bdb1",
    "to_text.id_number": "bc1d317f7c87b4b77b6eeeec13782965",
    "to_text.last_name": "ed73f6d58be7fc23188b6d24e1bfd2d2",
    "to_text.phone": "89c3f7a6458cf963b6710f5c6fca097a",
    "to_text.postcode": "ab73e9a81bf9bddaa227d26f615db55f",
    "to_text.sex": "760c9cfa9d6ae3abc65c75508b107c18",
    "to_text.ssn": "a85b765df0d168e05ddbf91515abb7ce",
    "to_text.state": "e6b94bb2db10fc222621c2a2d103c3a9",
    "to_text.street_number": "28e25540d2971f54a400e47b65661f5e",
    "treatment_clients.address_token": "39b2b155e24033c69de3553df128c3b9",
    "treatment_clients.dob_enc": "3936cf52051c4c962099a06949aeb0db",
    "treatment_clients.first_name_canon_enc": "86f5144a1f20cc1b9c1168eafad13965",
    "treatment_clients.first_name_enc": "caf5380ba5c1d595499d536bd546f02d",
    "treatment_clients.key_id": "d3c9a965e7bcd9f7d9b10a34de3da465",
    "treatment_clients.last_name_enc": "c857943215180f840ab563a888d8a332",
    "treatment_clients.middle_name_enc": "3fb39fd66aa64a9fbb9b638f61369106",
    "treatment_clients.name_dob_token": "77bf747b2f4b10181ba558bf430df6ba",
    "treatment_clients.person_token": "8121e411793c12e24a07bf4d4e3f8918",
    "treatment_clients.phone_token": "075e540db4f86507ea1de77a09af4832",
    "treatment_clients.ssn_enc": "b9e6d45f414ef9e4b971f2870e6cc196",
    "treatment_clients.ssn_token": "68fcb511d6f5e2825f9c5fbd16c5e54c",
}

# Literal values, so a reader sees what is pinned without recomputing a digest.
LITERALS = {
    ("token", "ssn", "123456780"): "2f4d1bd4b4fcd67e195953c0025958677eb5e76bdcad2ea4baf6858d8087fb02",
    ("person_id_token", "jail", " P0001 "): "cf2a93109c7189480e11ffc1c96b86aa4c1537f11313304a7df1da84e743589a",
    ("name_dob_token", "García-López", "Bill", date(1980, 2, 3)):
        "4effa63326ac9e5e002ba4cb89b0a003b9986a4e37e0a351b31572583caf7565",
    ("first_name", "Bill"): "AWBAEQCYAAAAAARQAAhQIQAEVCQEIIBgkAGACEAAEAgAACDABADEIhIAAIIBABEYAEAAUCBECABEAgBAgFwYAA==",
    ("dob", date(1980, 2, 3)): "egKzvsBxvE996CZ5tVt1Oc57UTnu0euYKeMJPMpO8r81YVZMB+KX3TVhVkwH4pfdszePupy7FgF1nwTsEULWbhjI"
                               "9LrO+zc7PlhC9kKVdnA=",
    ("ssn", "123-45-6780"): "7R1jeRreUY/Xs86wNiKlNiSBXz/eBti9epv9Z6MGEEeMr+ebSR0W3ipxn3Q0N2KZtA2xQ/zPAXmtor2FABt+39ES"
                            "NoGN0Utt4I0NVVHVfNg=",
}


def test_outputs_are_pinned():
    got = outputs(Pseudonymizer(KEY))
    drifted = sorted(k for k in EXPECTED if got.get(k) != EXPECTED[k])
    assert set(got) == set(EXPECTED)
    assert not drifted, f"outputs changed for the same key and input: {drifted}"


def test_literal_values_are_pinned():
    p = Pseudonymizer(KEY)
    fields = p.encoder.settings["fields"]
    for (what, *args), expected in LITERALS.items():
        if what in ("token", "person_id_token", "name_dob_token"):
            got = getattr(p, what)(*args)
        else:
            got = to_text(p.encoder.encode(what, [canonical(fields[what], args[0])]))[0]
        assert got == expected, (what, args)


def _pseudonymized(p: Pseudonymizer, contract, chunks) -> dict[str, list]:
    """Concatenated non-plain output columns of ``chunks``."""
    plain = {c.name for c in contract.plain_columns}
    out: dict[str, list] = {}
    for cols in chunks:
        for name, values in p.columns(contract, cols).items():
            if name not in plain:
                out.setdefault(name, []).extend(values)
    return out


@pytest.mark.parametrize("name", CONTRACTS)
def test_warm_caches_and_chunking_do_not_change_outputs(name):
    """Outputs depend on the value only: not on what was seen before, nor on chunk boundaries."""
    contract = load_contracts()[name]
    whole = _pseudonymized(Pseudonymizer(KEY), contract, [chunk(contract)])
    p = Pseudonymizer(KEY, cache_size=7)  # tiny memos: constant eviction
    _pseudonymized(p, contract, [chunk(contract, offset=3)])  # warm up on shifted rows
    pieces = [chunk(contract, rows=n, offset=o) for o, n in ((0, 1), (1, 48), (49, 101))]
    assert _pseudonymized(p, contract, pieces) == whole
    assert _pseudonymized(p, contract, [chunk(contract)]) == whole


def test_caches_never_cross_keys():
    """A rotated key gets its own tokens even from a process that just used the old key."""
    contract = load_contracts()["treatment_clients"]
    old = _pseudonymized(Pseudonymizer(KEY), contract, [chunk(contract)])
    fresh_other = _pseudonymized(Pseudonymizer(OTHER_KEY), contract, [chunk(contract)])
    after_old = _pseudonymized(Pseudonymizer(OTHER_KEY), contract, [chunk(contract)])
    assert after_old == fresh_other
    for column, values in old.items():
        if column not in ("age_at_event",) and any(values):
            assert values != fresh_other[column], column


def test_caches_are_bounded():
    p = Pseudonymizer(KEY, cache_size=10)
    contract = load_contracts()["jail_bookings"]
    p.columns(contract, chunk(contract))
    info = p.cache_info()
    assert info and all(i.maxsize == 10 and i.currsize <= 10 for i in info.values())
    assert all(getattr(fn, "cache_info")().maxsize == normalize.CACHE_SIZE
               for fn in (normalize.surname, normalize.given_name, normalize.ssn,
                          normalize.clean_text, normalize.phone))
    enc = Encoder(bytes(32), SETTINGS, cache_size=5)
    enc.encode("last_name", [f"NAME{chr(65 + i)}" for i in range(20)])
    assert len(enc._cache) == 5


def test_cached_name_parts_cannot_be_changed_by_a_caller():
    parts = normalize.name_parts("Mary-Kate Olsen")
    parts.append("X")
    assert normalize.name_parts("Mary-Kate Olsen") == ["MARY", "KATE", "OLSEN"]

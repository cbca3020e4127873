"""Benchmark: pseudonymization throughput, the plain per-row implementation next to the hub's.

Pseudonymization (``transforms.pseudonymize.Pseudonymizer.columns``) was about
half of intake time. The hub now memoizes per identifier column and uses the
C fast path of ``hmac.digest``; this prints, in one run and on the same data,
rows per second of:

  reference   the plain per-row implementation it replaced (kept below, verbatim in
              behaviour: ``hmac.new(...).hexdigest()`` per token, uncached normalization,
              one encoder call and one numpy row copy per record);
  hub         ``Pseudonymizer.columns`` as intake calls it, from a fresh instance
              (cold caches: filling them is part of the time);

and the ratio, for two inputs:

  repeating   the synthetic jail bookings (one row per charge, people booked again
              and again), repeated to ``--rows``: what an extract looks like;
  distinct    the same rows with every person id, surname and SSN made unique:
              the worst case for the caches (every lookup misses).

Both implementations must produce identical columns; the run stops if not.

    .venv/bin/python bench/pseudonymize.py              # 200,000 rows each
    .venv/bin/python bench/pseudonymize.py --rows 50000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

# --- the reference: the per-row implementation before memoization --------------------------------
# Kept here (not in the package) so the comparison survives later changes to transforms/.

from transforms import normalize  # noqa: E402
from transforms.normalize import SUFFIXES, _ascii_upper, age_on  # noqa: E402
from transforms.encodings import (DATE_LENGTH, field_width, fields_of, load_settings, name_columns,  # noqa: E402
                                  parse_date)

# Placeholder and nickname rules per row, without their memo.
_placeholder_name = normalize.placeholder_name.__wrapped__
_given_name_forms = normalize.given_name_forms.__wrapped__
_middle_name = normalize.middle_name.__wrapped__


def ref_name_parts(text):
    if not text:
        return []
    cleaned = re.sub(r"[^A-Z \-]", "", _ascii_upper(text).replace("'", "").replace(".", " "))
    words = [w for w in re.split(r"[\s\-]+", cleaned) if w]
    return [w for w in words if w not in SUFFIXES] or words


def ref_surname(text):
    return "".join(ref_name_parts(text))


def ref_given_name(text):
    parts = ref_name_parts(text)
    return next((w for w in parts if len(w) > 1), parts[0]) if parts else ""


def ref_ssn(text):
    if not text:
        return None
    digits = re.sub(r"\D", "", text)
    if len(digits) != 9:
        return None
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(digits)) == 1 or digits in ("123456789", "078051120"):
        return None
    return digits


def ref_clean_text(text):
    if not text:
        return None
    return re.sub(r"\s+", " ", re.sub(r"[^A-Z0-9 ]", " ", _ascii_upper(text))).strip() or None


def ref_phone(text):
    digits = re.sub(r"\D", "", text or "")
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return digits if len(digits) == 10 else None


def ref_canonical(field_settings, value, date_format=None):
    if value is None:
        return None
    kind, how = field_settings["kind"], field_settings.get("normalize")
    if kind == "date":
        d = parse_date(value, date_format)
        return d.strftime("%Y%m%d") if d and not normalize.placeholder_date(d) else None
    text = str(value)
    if how in ("given_name", "given_name_forms"):
        given = None if _placeholder_name(text, "given") else ref_given_name(text)
        if not given or len(given) < 2 or _placeholder_name(given, "given"):
            return None
        return given if how == "given_name" else " ".join(_given_name_forms(text))
    if how == "middle_name":
        return _middle_name(text) or None
    if how == "surname":
        return None if _placeholder_name(text, "surname") else ref_surname(text) or None
    if how == "ssn":
        return ref_ssn(text)
    if kind == "name":
        return "".join(ref_name_parts(text)) or None
    if kind == "digits":
        digits = re.sub(r"\D", "", text)
        return None if not digits or normalize.filler_digits(digits) else digits
    return None if normalize.placeholder_text(text) else ref_clean_text(text)


def ref_to_text(rows):
    data = rows.astype("<u8").tobytes()
    step = rows.shape[1] * 8
    present = rows.any(axis=1)
    return [base64.b64encode(data[i * step:(i + 1) * step]).decode("ascii") if present[i] else None
            for i in range(len(rows))]


class RefEncoder:
    def __init__(self, subkey, settings):
        self._key, self.settings = subkey, settings
        bloom = settings["bloom"]
        self._bits, self._k, self._fold, self._q = bloom["bits"], bloom["hashes"], bloom["fold"], bloom["qgram"]
        self._cache, self._masks = {}, {}

    def _token(self, domain, value):
        digest = hmac.new(self._key, f"tok\x1f{domain}\x1f{value}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little") or 1

    def _qgram_mask(self, domain, gram):
        cached = self._masks.get((domain, gram))
        if cached is not None:
            return cached
        digest = hmac.new(self._key, f"bf\x1f{domain}\x1f{gram}".encode(), hashlib.sha512).digest()
        mask = 0
        for i in range(self._k):
            mask |= 1 << (int.from_bytes(digest[2 * i:2 * i + 2], "little") % self._bits)
        self._masks[(domain, gram)] = mask
        return mask

    def _bloom(self, domain, value):
        padded = "_" + value + "_"
        mask = 0
        for g in {padded[i:i + self._q] for i in range(len(padded) - self._q + 1)}:
            mask |= self._qgram_mask(domain, g)
        bits = self._bits
        if self._fold:
            bits //= 2
            mask = (mask & ((1 << bits) - 1)) ^ (mask >> bits)
        return np.frombuffer(mask.to_bytes(bits // 8, "little"), dtype="<u8").astype(np.uint64)

    def _variants(self, domain, value, length):
        toks = [self._token(domain, value)]
        for j in range(length):
            toks.append(self._token(domain, value[:j] + value[j + 1:]) if j < len(value) else 0)
        return toks

    def encode_one(self, field, value):
        f = fields_of(self.settings)[field]
        width = field_width(self.settings, field)
        if value is None:
            return np.zeros(width, dtype=np.uint64)
        cached = self._cache.get((field, value))
        if cached is not None:
            return cached
        kind = f["kind"]
        if kind == "name" and f.get("initial"):
            full = "".join(w for w in value.split() if len(w) > 1)
            bloom = self._bloom("name", full) if full else np.zeros(width - 1, dtype=np.uint64)
            row = np.append(bloom, np.uint64(self._token(field + ":initial", value[0])))
        elif kind == "tokens":
            forms = value.split()
            others = [self._token(field, form) for form in forms[1:width]]
            pad = [self._token(field + ":pad", f"{value}\x1f{i}") for i in range(width - 1 - len(others))]
            row = np.array([self._token(field, forms[0])] + sorted(others + pad), dtype=np.uint64)
        elif kind in ("name", "text"):
            row = self._bloom("name" if kind == "name" else field, value)
        elif kind == "digits":
            row = np.array(self._variants(field, value, f["length"]), dtype=np.uint64)
        elif kind == "date":
            y, m, d = value[:4], value[4:6], value[6:8]
            swap = self._token(field + ":swap", y + min(m, d) + max(m, d))
            row = np.array(self._variants(field, value, DATE_LENGTH) + [swap], dtype=np.uint64)
        else:
            row = np.array([self._token(field, value)], dtype=np.uint64)
        if len(self._cache) < 2_000_000:
            self._cache[(field, value)] = row
        return row

    def encode(self, field, values):
        out = np.zeros((len(values), field_width(self.settings, field)), dtype=np.uint64)
        for i, v in enumerate(values):
            if v is not None:
                out[i] = self.encode_one(field, v)
        return out


class RefPseudonymizer:
    def __init__(self, key):
        from leadhub.core.warehouse import ENCODING_COLUMNS, NAME_DOB_TOKEN, TOKEN_COLUMNS
        self.cols = ENCODING_COLUMNS, NAME_DOB_TOKEN, TOKEN_COLUMNS
        self._key = key.subkey("pseudonym")
        self.key_id = key.key_id
        self.encoder = RefEncoder(key.subkey("similarity"), load_settings())

    def token(self, domain, value):
        if not value:
            return None
        return hmac.new(self._key, f"{domain}\x1f{value}".encode(), hashlib.sha256).hexdigest()

    def name_dob_token(self, last, first, dob):
        last_n, first_n = ref_surname(last), ref_given_name(first)
        if not (last_n and first_n and dob):
            return None
        return self.token("namedob", f"{last_n}|{first_n}|{dob.isoformat()}")

    def columns(self, contract, cols):
        encoding_columns, name_dob_column, token_columns = self.cols
        n = len(next(iter(cols.values()))) if cols else 0
        out = {c.name: cols[c.name] for c in contract.plain_columns}
        by_role = {c.identifier: cols[c.name] for c in contract.identifier_columns}
        tok = self.token
        if "agency_person_id" in by_role:
            out[token_columns["agency_person_id"]] = [
                tok(f"apid:{contract.agency}", (v or "").strip() or None) for v in by_role["agency_person_id"]]
        if "ssn" in by_role:
            out[token_columns["ssn"]] = [tok("ssn", ref_ssn(v)) for v in by_role["ssn"]]
        if "address" in by_role:
            out[token_columns["address"]] = [tok("address", ref_clean_text(v)) for v in by_role["address"]]
        if "phone" in by_role:
            out[token_columns["phone"]] = [tok("phone", ref_phone(v)) for v in by_role["phone"]]
        if {"last_name", "first_name", "dob"} <= by_role.keys():
            out[name_dob_column] = [self.name_dob_token(a, b, d) for a, b, d in
                                    zip(by_role["last_name"], by_role["first_name"], by_role["dob"])]
        if contract.age_at:
            out["age_at_event"] = [age_on(d, e.date() if isinstance(e, datetime) else e)
                                   for d, e in zip(by_role["dob"], cols[contract.age_at])]
        fields = fields_of(self.encoder.settings)
        by_field = name_columns({f: v for f, v in by_role.items() if f in encoding_columns})
        for field, column in encoding_columns.items():
            if field in by_field:
                values = [ref_canonical(fields[field], v) for v in by_field[field]]
                out[column] = ref_to_text(self.encoder.encode(field, values))
        out["key_id"] = [self.key_id] * n
        return out


# --- data ------------------------------------------------------------------------------------------

def _letters(i: int) -> str:
    """A unique letters-only suffix (names lose digits in normalization)."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += chr(65 + r)
        if not i:
            return out


def chunks_for(rows: int, people: int, seed: int, chunk_rows: int, distinct: bool):
    """Typed jail-bookings chunks as intake hands them over, ``rows`` in all."""
    from leadhub.core.contracts import load_contracts
    from leadhub.core.readers import read_chunks
    from synthetic import generate

    contract = load_contracts()["jail_bookings"]
    work = Path(tempfile.mkdtemp(prefix="leadhub-bench-pseudo-"))
    generate(work / "inbox", work / "answers", people=people, seed=seed)
    [(_, base)] = read_chunks(work / "inbox" / "jail" / "jail_bookings_20241231.csv", contract,
                              chunk_rows=10**9)
    m = len(base["inmate_id"])
    full = {name: [values[i % m] for i in range(rows)] for name, values in base.items()}
    if distinct:
        full["inmate_id"] = [f"{v}-{i}" for i, v in enumerate(full["inmate_id"])]
        full["last_name"] = [f"{v} {_letters(i)}" for i, v in enumerate(full["last_name"])]
        full["ssn"] = [f"{100 + i // 10**6 % 500:03d}-{10 + i // 10**4 % 89:02d}-{1000 + i % 8999:04d}"
                       for i in range(rows)]
    return contract, [{k: v[s:s + chunk_rows] for k, v in full.items()} for s in range(0, rows, chunk_rows)]


def run(impl, contract, chunks) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    outs = [impl.columns(contract, c) for c in chunks]
    return time.perf_counter() - start, outs


def main(argv: list[str] | None = None) -> int:
    from leadhub.core.keys import MasterKey
    from transforms.pseudonymize import Pseudonymizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000, help="rows per input (default 200,000)")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk, as intake (default 50,000)")
    p.add_argument("--people", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    key = MasterKey(bytes(range(32)))  # a fixed benchmark key; no real key is read
    table = []
    for label, distinct in (("repeating", False), ("distinct", True)):
        contract, chunks = chunks_for(args.rows, args.people, args.seed, args.chunk_rows, distinct)
        ref_s, ref_out = run(RefPseudonymizer(key), contract, chunks)
        hub_s, hub_out = run(Pseudonymizer(key), contract, chunks)
        if ref_out != hub_out:
            raise SystemExit(f"{label}: the hub's output differs from the reference implementation")
        table.append((label, args.rows, ref_s, hub_s))

    head = f"{'input':<10} {'rows':>9}  {'reference rows/s':>16} {'hub rows/s':>12} {'hub/reference':>13}"
    print()
    print(head)
    print("-" * len(head))
    for label, rows, ref_s, hub_s in table:
        print(f"{label:<10} {rows:>9,}  {rows / ref_s:>16,.0f} {rows / hub_s:>12,.0f} {ref_s / hub_s:>12.1f}x")
    print("\noutputs identical (every token and encoding) for both inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

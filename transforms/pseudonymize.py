"""Replace identifier columns by keyed HMAC-SHA256 pseudonyms.

What comes out holds no identifier: names, dates of birth, SSNs, agency
person ids, addresses and phones become 64-hex tokens that only the holder of
the key could recompute; the date of birth survives only as age at the event.
Tokens are domain-separated so an SSN token can never equal a phone token.

Beside the exact tokens, each record gets keyed similarity encodings of its
names, date of birth and SSN (``*_enc`` columns, see transforms/encodings.py)
so linkage can tolerate typing errors without ever seeing clear text.

Speed: intake calls ``columns`` on every chunk, and identifiers repeat a lot
(one row per charge of the same booking, the same person across bookings), so
each identifier column goes through a bounded memo (``functools.lru_cache``,
``CACHE_SIZE`` distinct raw values per column) from its raw value straight to
its output: token, or base64 encoding. The memos are built per instance over
closures that hold only this instance's subkeys, so no cache is ever shared
between keys (key rotation makes a new Pseudonymizer), and they hold no
reference back to the instance. HMACs use ``hmac.digest`` (one C call; the same
bytes as ``hmac.new(...).hexdigest()``). Every output is byte-identical to the
plain per-row computation; tests/transforms/test_pseudonymize_stable.py pins it.
"""

from __future__ import annotations

import base64
import hmac
from datetime import date, datetime
from functools import lru_cache
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadhub.core.clock import CLOCK
from leadhub.core.contracts import Contract
from leadhub.core.keys import MasterKey
from leadhub.core.warehouse import ENCODING_COLUMNS, NAME_DOB_TOKEN, TOKEN_COLUMNS
from transforms import normalize
from transforms.encodings import Encoder, canonical, load_settings, name_columns

# Distinct raw values remembered per identifier column and instance. Bounded so a file
# of millions of different people cannot grow memory: a full memo is about 6-10 MB, and
# everything full for one extract (these memos, the normalizers' and the encoder's) was
# measured at about 90 MB. 32k values cover far more people than one 50k-row chunk holds.
CACHE_SIZE = 1 << 15


def _token_function(key: bytes, domain: str) -> Callable[[str | None], str | None]:
    """``Pseudonymizer.token`` for one domain, with the domain prefix encoded once."""
    prefix = f"{domain}\x1f".encode()
    digest = hmac.digest

    def token(value: str | None) -> str | None:
        if not value:
            return None
        # f"{domain}\x1f{value}".encode() == prefix + value.encode() for UTF-8.
        return digest(key, prefix + f"{value}".encode(), "sha256").hex()

    return token


def _mapped(fn: Callable, *columns: list) -> list:
    """``fn`` over the rows of ``columns``; the memo's C fast path, unless a value is unhashable."""
    try:
        return list(map(fn, *columns))
    except TypeError:
        # An unhashable value (readers never hand one over: cells are str, date, datetime
        # or None) cannot be memoized; retry the column without the outer memo so that an
        # error, if any, comes from the computation itself.
        return list(map(getattr(fn, "__wrapped__", fn), *columns))


class Pseudonymizer:
    def __init__(self, key: MasterKey, linkage_settings: dict | None = None, cache_size: int = CACHE_SIZE):
        self._key = key.subkey("pseudonym")
        self.key_id = key.key_id
        self.encoder = Encoder(key.subkey("similarity"), linkage_settings or load_settings())
        self._memo = lru_cache(maxsize=cache_size, typed=True)
        pkey = self._key
        ssn_tok, addr_tok = _token_function(pkey, "ssn"), _token_function(pkey, "address")
        phone_tok, namedob_tok = _token_function(pkey, "phone"), _token_function(pkey, "namedob")
        surname, given_name = normalize.surname, normalize.given_name
        ssn, clean_text, phone = normalize.ssn, normalize.clean_text, normalize.phone

        def name_dob(last, first, dob):
            last_n, first_n = surname(last), given_name(first)
            if not (last_n and first_n and dob):
                return None
            return namedob_tok(f"{last_n}|{first_n}|{dob.isoformat()}")

        # identifier role -> memoized raw value -> token
        self._tokens = {
            "ssn": self._memo(lambda v: ssn_tok(ssn(v))),
            "address": self._memo(lambda v: addr_tok(clean_text(v))),
            "phone": self._memo(lambda v: phone_tok(phone(v))),
        }
        self._name_dob = self._memo(name_dob)
        self._person_ids: dict[str, Callable] = {}  # agency -> memoized person id -> token
        # linkage field -> memoized raw value -> base64 encoding (or None)
        self._encodings = {field: self._memo(self._encoding_function(field)) for field in ENCODING_COLUMNS}

    def _encoding_function(self, field: str) -> Callable:
        """Raw value -> what ``to_text(encoder.encode(field, [canonical(...)]))[0]`` gives."""
        encoder, settings = self.encoder, self.encoder.fields[field]
        b64 = base64.b64encode

        def encoding(value) -> str | None:
            value = canonical(settings, value)
            if value is None:
                return None
            row = encoder.encode_one(field, value)
            return b64(row.astype("<u8").tobytes()).decode("ascii") if row.any() else None

        return encoding

    def _person_id_function(self, agency: str) -> Callable:
        fn = self._person_ids.get(agency)
        if fn is None:
            tok = _token_function(self._key, f"apid:{agency}")
            fn = self._person_ids[agency] = self._memo(lambda v: tok((v or "").strip() or None))
        return fn

    def cache_info(self) -> dict[str, object]:
        """Hits, misses and sizes of the per-column memos (for benchmarks and tests)."""
        info = {f"token:{role}": fn.cache_info() for role, fn in self._tokens.items()}
        info["token:name_dob"] = self._name_dob.cache_info()
        info.update({f"token:apid:{a}": fn.cache_info() for a, fn in self._person_ids.items()})
        info.update({f"encoding:{f}": fn.cache_info() for f, fn in self._encodings.items()})
        return info

    def encodings(self, by_role: dict[str, list]) -> dict[str, list]:
        """Similarity-encoding columns (base64, NULL when missing) for the identifier roles present.

        Name fields go through ``encodings.name_columns`` first: a John/Jane Doe
        pair becomes missing, and a given name also yields the nickname token set
        (``first_name_canon``) and, when no middle name is recorded, the middle
        name it holds ("Mary Ann").
        """
        by_field = name_columns({f: v for f, v in by_role.items() if f in ENCODING_COLUMNS})
        out = {}
        for field, column in ENCODING_COLUMNS.items():
            if field in by_field:
                out[column] = _mapped(self._encodings[field], by_field[field])
        return out

    def token(self, domain: str, value: str | None) -> str | None:
        if not value:
            return None
        return hmac.digest(self._key, f"{domain}\x1f{value}".encode(), "sha256").hex()

    def person_id_token(self, agency: str, person_id: str | None) -> str | None:
        """Agency person ids are scoped by agency: police 123 is not jail 123."""
        return self.token(f"apid:{agency}", (person_id or "").strip() or None)

    def name_dob_token(self, last: str | None, first: str | None, dob: date | None) -> str | None:
        last_n, first_n = normalize.surname(last), normalize.given_name(first)
        if not (last_n and first_n and dob):
            return None
        return self.token("namedob", f"{last_n}|{first_n}|{dob.isoformat()}")

    def columns(self, contract: Contract, cols: dict) -> dict:
        """Typed columns of one chunk -> staging columns without identifiers.

        ``cols`` maps every contract column to its parsed values, Python lists
        (dates as ``date``, timestamps as ``datetime``) or Arrow arrays (what
        ``read_chunks(arrow=True)`` gives); the staging columns come back in the
        same form, the token, encoding and key id columns as dictionary arrays
        (``_spread``). Identifier lists are consumed and not returned.

        A person's identifiers repeat on every row of theirs (charges, bookings),
        so the distinct combinations of a chunk's identifier columns are
        pseudonymized and encoded once, each column through its memo in one
        C-level loop, and the results spread over the rows by index.
        """
        as_arrow = any(isinstance(v, (pa.Array, pa.ChunkedArray)) for v in cols.values())
        n = len(next(iter(cols.values()))) if cols else 0
        out = {c.name: cols[c.name] for c in contract.plain_columns}
        by_role = {c.identifier: _as_array(cols[c.name]) for c in contract.identifier_columns}
        first, groups = _distinct_rows(list(by_role.values()), n)
        distinct = {role: values.take(first).to_pylist() for role, values in by_role.items()}
        with CLOCK.timed("pseudonymize"):
            staged = self._tokens_of(contract, distinct)
        with CLOCK.timed("encode"):
            staged.update(self.encodings(distinct))
        with CLOCK.timed("pseudonymize"):
            spread = pa.array(groups)
            for column, values in staged.items():
                if as_arrow:
                    out[column] = _spread(values, spread)
                else:
                    out[column] = pa.array(values, pa.string()).take(spread).to_pylist()
            if contract.age_at:
                events = cols[contract.age_at]
                if not isinstance(events, (pa.Array, pa.ChunkedArray)):  # a list may mix dates and datetimes
                    events = [e.date() if isinstance(e, datetime) else e for e in events]
                age = _age_on(by_role["dob"], _as_array(events))
                out["age_at_event"] = age if as_arrow else age.to_pylist()
            if as_arrow:
                out["key_id"] = _spread([self.key_id], pa.array(np.zeros(n, np.int32)))
            else:
                out["key_id"] = [self.key_id] * n
        return out

    def _tokens_of(self, contract: Contract, by_role: dict[str, list]) -> dict[str, list]:
        """Exact token columns for the identifier roles present (lists, one value per row)."""
        out = {}
        if "agency_person_id" in by_role:
            out[TOKEN_COLUMNS["agency_person_id"]] = _mapped(
                self._person_id_function(contract.agency), by_role["agency_person_id"])
        for role in ("ssn", "address", "phone"):
            if role in by_role:
                out[TOKEN_COLUMNS[role]] = _mapped(self._tokens[role], by_role[role])
        if {"last_name", "first_name", "dob"} <= by_role.keys():
            out[NAME_DOB_TOKEN] = _mapped(self._name_dob, by_role["last_name"], by_role["first_name"],
                                          by_role["dob"])
        return out


def _as_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values)


def _spread(values: list, rows: pa.Array) -> pa.DictionaryArray:
    """One value per distinct identifier combination -> one per row, as a dictionary array.

    The rows hold small indices into the chunk's distinct values instead of copies of
    64-character tokens and long base64 encodings (most of a staged row's bytes): DuckDB
    and the validation process read them as such. A NULL is a NULL index, never a NULL in
    the dictionary, so ``null_count`` and every reader see it as a plain NULL.
    """
    encoded = pa.array(values, pa.string()).dictionary_encode()
    return pa.DictionaryArray.from_arrays(encoded.indices.take(rows), encoded.dictionary)


def _distinct_rows(columns: list[pa.Array], n: int) -> tuple[pa.Array, np.ndarray]:
    """(the first row of each distinct combination of ``columns``' values, each row's combination).

    Each column is dictionary-encoded (nulls a value of their own) and the codes are
    combined column by column as digits of one number; only when the next digit could
    overflow int64 are the numbers renumbered (a sort), so most chunks need one sort in all.
    Combinations are numbered in the order of their codes, column by column.
    """
    groups = np.zeros(n, dtype=np.int64)
    bound = 1  # every number in ``groups`` is below this
    for values in columns:
        if values.type == pa.null():
            continue
        encoded = values.dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1
        radix = len(encoded.dictionary) + 1
        if bound * radix > 1 << 62:
            _, groups = np.unique(groups, return_inverse=True)
            bound = int(groups.max(initial=0)) + 1
        groups = groups * radix + codes
        bound *= radix
    _, first, groups = np.unique(groups, return_index=True, return_inverse=True)
    return pa.array(first), groups.reshape(-1)


def _age_on(dob: pa.Array, when: pa.Array) -> pa.Array:
    """``normalize.age_on`` over whole columns: whole years from birth date to event (NULL if either is)."""
    dob, when = dob.cast(pa.date32()), when.cast(pa.date32()) if when.type != pa.date32() else when
    before = pc.or_(pc.less(pc.month(when), pc.month(dob)),
                    pc.and_(pc.equal(pc.month(when), pc.month(dob)), pc.less(pc.day(when), pc.day(dob))))
    return pc.subtract(pc.subtract(pc.year(when), pc.year(dob)), before.cast(pa.int64()))

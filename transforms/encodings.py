"""Keyed similarity encodings: what fuzzy matching works on instead of clear text.

Exact HMAC tokens only match identical spellings. To tolerate typing errors
without handing the matcher a name or a birth date, every identifier field is
turned into a fixed-width row of 64-bit words, computed with the
``similarity`` subkey, that supports a similarity comparison but not reading
the value back. Two representations, chosen per field kind (see
docs/linkage.md for why):

``name`` / ``text`` — a Bloom filter of the value's character bigrams
    (CLK-style, one filter per field). Bit positions of each bigram come from
    HMAC-SHA512 under the secret subkey, not from public double hashing, so
    nobody without the key can build a filter for a guessed name; the filter
    is then XOR-folded in half, so a set bit no longer belongs to a single
    bigram, which is what frequency and pattern-mining attacks exploit. Both
    name fields share one bigram domain so swapped first/last names can be
    compared crosswise. Similarity is the Dice coefficient.

``digits`` / ``date`` — numbers have a ten-letter alphabet; a Bloom filter of
    their digits would leak the value to anyone who knows a handful of
    records. Instead the field keeps a small set of keyed 64-bit tokens: the
    whole value and each one-digit deletion of it (a deletion neighbourhood).
    Two values one substitution, adjacent transposition, insertion or deletion
    apart share a token; dates also carry a token of the day/month-swapped
    canonical form. Each token reveals only equality of a whole variant.

``exact`` — one keyed 64-bit token (sex, state).

``tokens`` — a set of keyed 64-bit tokens, one per form, for evidence that
    is "do two values share a member". ``first_name_canon`` is one: the given
    name's own token first, then one per formal name it is a nickname of
    (``normalize.given_name_forms``, from the ``nicknames`` dataset), so Bill
    and William share WILLIAM. Every row of a present value fills all
    ``length`` words (keyed padding, in token order), so neither the number of
    formal names nor their position tells a name. Compare with "any token in
    common" (``list_has_any``); word 0 alone is an exact token of the given
    name (term frequencies).

``middle_name`` is a ``name`` field with ``"initial": true``: its row is the
    name's Bloom filter words (all zero when only an initial was recorded)
    followed by one keyed token of the initial. Levels: Dice on the filter
    words only when both filters are non-empty (full names); "initial" when
    the initial tokens agree and either side has no filter ("J" vs "James");
    missing when the initial token is zero on either side (``split_initial``).
    A given-name field holding more than the given name ("Mary Ann",
    "John Q") supplies the middle name when no middle name is recorded.

Missing values: blank, placeholder names ("Unknown", "FNU", "Baby Girl",
single letters; John/Jane Doe as a pair; ``transforms/reference/``), sentinel
birth dates (1900-01-01 and the like) and impossible SSNs all encode as the
all-zero row, so they weigh as missing, never as agreement. Tokens are never
zero.

``middle_name`` and ``first_name_canon`` are encoded as ``DEFAULT_FIELDS``
defines them whether or not the settings file lists them (it may add their
comparison parameters), so an encoding never depends on a matcher's settings.

Speed without changing a bit: HMACs go through ``hmac.digest`` (one C call,
the same bytes as ``hmac.new(...).digest()``), each distinct value is encoded
once and remembered in a bounded per-encoder cache (values repeat on every
row of a person), and ``encode`` encodes the distinct values of a batch once
and spreads them with one numpy take.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections import OrderedDict
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from transforms import normalize

SETTINGS_PATH = Path(__file__).with_name("linkage_settings.json")
# Fields whose encoding (kind, normalization, width) is defined here, whatever a settings file
# says about them: the settings may add comparison parameters (dice, priors, term_frequency).
DEFAULT_FIELDS = {
    "middle_name": {"kind": "name", "normalize": "middle_name", "initial": True},
    # 20 words: a given name and up to 19 formal names (the dataset's largest set has 18).
    "first_name_canon": {"kind": "tokens", "normalize": "given_name_forms", "length": 20},
}
# Fields computed from another field's columns, never mapped on their own.
DERIVED_FIELDS = {"first_name_canon": "first_name"}
DATE_LENGTH = 8  # YYYYMMDD
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d")
# Encoded rows remembered per Encoder. Bounded (oldest out first) so memory cannot grow
# with the number of different people in a file (it used to keep up to 2 million rows,
# several hundred MB): about 10 MB when full.
ENCODE_CACHE_SIZE = 1 << 15
_NOT_DIGIT = re.compile(r"\D")


def load_settings(path: Path | None = None) -> dict:
    """The versioned thresholds and weights; never hard-coded so a change is reviewable."""
    return json.loads(Path(path or SETTINGS_PATH).read_text())


def fields_of(settings: dict) -> dict[str, dict]:
    """Every encodable field: the settings' own, and ``DEFAULT_FIELDS`` encoded as defined there."""
    fields = dict(settings["fields"])
    for field, encoding in DEFAULT_FIELDS.items():
        fields[field] = {**fields.get(field, {}), **encoding}
    return fields


# -- normalization of one raw value into the canonical string that gets encoded -----------------

def parse_date(value, fmt: str | None = None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for f in ((fmt,) if fmt else DATE_FORMATS):
        try:
            return datetime.strptime(text, f).date()
        except ValueError:
            continue
    return None


def _given(text: str) -> str | None:
    """The given name, or None for a placeholder ("Baby Boy", or "Unknown Q" by its given word)."""
    if normalize.placeholder_name(text, "given"):
        return None
    given = normalize.given_name(text)
    if len(given) < 2 or normalize.placeholder_name(given, "given"):
        return None  # initials only ("J. Q.") name nobody
    return given


def canonical(field_settings: dict, value, date_format: str | None = None) -> str | None:
    """The normalized spelling of ``value`` for its field, or None when missing, a placeholder or impossible.

    For ``tokens`` fields the forms are space-separated ("BILL ROBERT WILLIAM ...").
    """
    if value is None:
        return None
    kind, how = field_settings["kind"], field_settings.get("normalize")
    if kind == "date":
        d = parse_date(value, date_format)
        return d.strftime("%Y%m%d") if d and not normalize.placeholder_date(d) else None
    text = str(value)
    if how == "given_name":
        return _given(text)
    if how == "given_name_forms":
        return " ".join(normalize.given_name_forms(text)) if _given(text) else None
    if how == "middle_name":
        return normalize.middle_name(text) or None
    if how == "surname":
        return None if normalize.placeholder_name(text, "surname") else normalize.surname(text) or None
    if how == "ssn":
        return normalize.ssn(text)
    if kind == "name":
        return "".join(normalize.name_parts(text)) or None
    if kind == "digits":
        digits = _NOT_DIGIT.sub("", text)
        return None if not digits or normalize.filler_digits(digits) else digits
    return None if normalize.placeholder_text(text) else normalize.clean_text(text)


# -- the encoder ---------------------------------------------------------------------------------

def field_width(settings: dict, field: str) -> int:
    """Number of 64-bit words one field takes per record."""
    f = fields_of(settings)[field]
    kind = f["kind"]
    if kind in ("name", "text"):
        bits = settings["bloom"]["bits"] // (2 if settings["bloom"]["fold"] else 1)
        return bits // 64 + (1 if f.get("initial") else 0)
    if kind == "digits":
        return 1 + f["length"]
    if kind == "tokens":
        return f["length"]
    if kind == "date":
        return 1 + DATE_LENGTH + 1
    return 1


class Encoder:
    """Turns canonical field values into keyed word rows; caches per distinct value.

    The caches belong to the instance, i.e. to one key: an encoder made with a
    rotated key never sees another key's rows.
    """

    def __init__(self, subkey: bytes, settings: dict | None = None, cache_size: int = ENCODE_CACHE_SIZE):
        self._key = subkey
        self.settings = settings or load_settings()
        bloom = self.settings["bloom"]
        self._bits, self._k, self._fold, self._q = bloom["bits"], bloom["hashes"], bloom["fold"], bloom["qgram"]
        if self._k > 32 or 65536 % self._bits:
            raise ValueError("bloom: at most 32 hashes and a power-of-two size up to 65536 bits")
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        # Bigram masks: naturally bounded, normalized text has a small alphabet.
        self._masks: dict[tuple[str, str], int] = {}
        self.fields = fields_of(self.settings)
        self._widths = {field: field_width(self.settings, field) for field in self.fields}

    def _token(self, domain: str, value: str) -> int:
        digest = hmac.digest(self._key, f"tok\x1f{domain}\x1f{value}".encode(), "sha256")
        return int.from_bytes(digest[:8], "little") or 1

    def _qgram_mask(self, domain: str, gram: str) -> int:
        cached = self._masks.get((domain, gram))
        if cached is not None:
            return cached
        digest = hmac.digest(self._key, f"bf\x1f{domain}\x1f{gram}".encode(), "sha512")
        mask = 0
        for i in range(self._k):
            mask |= 1 << (int.from_bytes(digest[2 * i:2 * i + 2], "little") % self._bits)
        self._masks[(domain, gram)] = mask
        return mask

    def _bloom(self, domain: str, value: str) -> np.ndarray:
        padded = "_" + value + "_"
        grams = {padded[i:i + self._q] for i in range(len(padded) - self._q + 1)}
        mask = 0
        for g in grams:
            mask |= self._qgram_mask(domain, g)
        bits = self._bits
        if self._fold:
            bits //= 2
            mask = (mask & ((1 << bits) - 1)) ^ (mask >> bits)
        return np.frombuffer(mask.to_bytes(bits // 8, "little"), dtype="<u8").astype(np.uint64)

    def _token_set(self, domain: str, forms: list[str], length: int) -> list[int]:
        """The first form's token, then the others' and keyed padding, in token order.

        Always ``length`` non-zero words: how many formal names a nickname has
        ("Chris" has 18) would otherwise tell the name from the count or the
        position of the zeros. Padding tokens come from their own domain and the
        value, so they only ever agree between equal values.
        """
        own = self._token(domain, forms[0])
        others = [self._token(domain, form) for form in forms[1:length]]
        pad = [self._token(domain + ":pad", f"{' '.join(forms)}\x1f{i}") for i in range(length - 1 - len(others))]
        return [own] + sorted(others + pad)

    def _variants(self, domain: str, value: str, length: int) -> list[int]:
        """The value's token and one per one-digit deletion (0 beyond the value's length).

        Same bytes as ``_token`` per variant, with the domain prefix encoded once:
        this runs ten HMACs per SSN or date, the bulk of encoding a new person.
        """
        key, prefix, digest, from_bytes = self._key, f"tok\x1f{domain}\x1f".encode(), hmac.digest, int.from_bytes
        variants = [value] + [value[:j] + value[j + 1:] for j in range(min(length, len(value)))]
        toks = [from_bytes(digest(key, prefix + v.encode(), "sha256")[:8], "little") or 1 for v in variants]
        return toks + [0] * (length - len(value)) if len(value) < length else toks

    def encode_one(self, field: str, value: str | None) -> np.ndarray:
        if value is None:
            return np.zeros(self._widths[field], dtype=np.uint64)
        cached = self._cache.get((field, value))
        if cached is not None:
            return cached
        f = self.fields[field]
        kind = f["kind"]
        if kind == "name" and f.get("initial"):
            # Shares the name domain: a middle name can be compared with a given name.
            full = "".join(w for w in value.split() if len(w) > 1)
            bloom = self._bloom("name", full) if full else np.zeros(self._widths[field] - 1, np.uint64)
            row = np.append(bloom, np.uint64(self._token(field + ":initial", value[0])))
        elif kind in ("name", "text"):
            # Both name fields share one domain so swapped first/last names can be compared.
            row = self._bloom("name" if kind == "name" else field, value)
        elif kind == "tokens":
            row = np.array(self._token_set(field, value.split(), f["length"]), dtype=np.uint64)
        elif kind == "digits":
            row = np.array(self._variants(field, value, f["length"]), dtype=np.uint64)
        elif kind == "date":
            y, m, d = value[:4], value[4:6], value[6:8]
            swap = self._token(field + ":swap", y + min(m, d) + max(m, d))
            row = np.array(self._variants(field, value, DATE_LENGTH) + [swap], dtype=np.uint64)
        else:
            row = np.array([self._token(field, value)], dtype=np.uint64)
        if len(self._cache) >= self._cache_size:
            # Oldest first. OrderedDict, because deleting the first key of a plain dict
            # over and over makes finding the next first key slower and slower.
            self._cache.popitem(last=False)
        self._cache[(field, value)] = row
        return row

    def encode(self, field: str, values) -> np.ndarray:
        """Canonical values (None for missing) -> (n, width) uint64 array.

        Each distinct value is encoded once; one take spreads the rows, instead of
        one numpy row assignment per record.
        """
        width = self._widths[field]
        index: dict = {None: 0}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.intp, count=len(values))
        table = np.zeros((len(index), width), dtype=np.uint64)
        for v, i in index.items():
            if v is not None:
                table[i] = self.encode_one(field, v)
        return table[codes]


# -- storage: one base64 string per record and field ----------------------------------------------
# Base64 rather than hex: a hex column is a long run of digits, where a nine-digit
# SSN or an eight-digit date turns up by pure chance once there are enough rows,
# and byte-for-byte searches of the warehouse for identifiers would flag it.

def to_text(rows: np.ndarray) -> list[str | None]:
    """(n, width) words -> base64 strings for a VARCHAR column; missing rows become NULL."""
    data = rows.astype("<u8").tobytes()
    step = rows.shape[1] * 8
    present = rows.any(axis=1).tolist()
    b64 = base64.b64encode
    return [b64(data[i:i + step]).decode("ascii") if p else None
            for i, p in zip(range(0, len(data), step), present)]


def from_text(values, width: int) -> np.ndarray:
    """The inverse of ``to_text``; NULL (or anything malformed) becomes an all-zero (missing) row."""
    blank = bytes(8 * width)
    out = []
    for v in values:
        raw = base64.b64decode(v) if isinstance(v, str) and v else blank
        out.append(raw if len(raw) == 8 * width else blank)
    return np.frombuffer(b"".join(out), dtype="<u8").astype(np.uint64).reshape(len(values), width)


def from_binary(values: pa.Array, width: int) -> np.ndarray:
    """``from_text`` for values already decoded from base64 (an Arrow binary array, e.g. DuckDB's
    ``from_base64``): the words are read from Arrow's buffer, no Python object per value.
    NULL or a value of another length becomes an all-zero (missing) row."""
    size, n = 8 * width, len(values)
    out = np.zeros((n, width), dtype=np.uint64)
    _, offsets, data = values.buffers() if n else (None, None, None)
    if offsets is None:
        return out
    dtype = np.int64 if pa.types.is_large_binary(values.type) else np.int32
    offsets = np.frombuffer(offsets, dtype=dtype)[values.offset:values.offset + n + 1]
    lengths = np.diff(offsets)
    good = (lengths == size) & values.is_valid().to_numpy(zero_copy_only=False)
    if not good.any():
        return out
    if int(lengths.sum()) == int(good.sum()) * size:  # the good values lie back to back in the buffer
        words = np.frombuffer(data, dtype="<u8", count=int(good.sum()) * width, offset=int(offsets[0]))
        out[good] = words.reshape(-1, width)
    else:
        raw = np.frombuffer(data, dtype=np.uint8)
        for i in np.flatnonzero(good):
            out[i] = raw[offsets[i]:offsets[i] + size].view("<u8")
    return out


def split_initial(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a field with ``"initial": true`` -> (Bloom filter words, initial tokens)."""
    return rows[:, :-1], rows[:, -1]


# -- one person's name fields, wherever they come from ----------------------------------------------

def middle_source(middle, given) -> str | None:
    """The text a record's middle name is encoded from.

    The recorded middle name when it names one; otherwise whatever the
    given-name field holds after the given name ("Mary Ann" -> "ANN",
    "John Q" -> "Q"), so "Mary Ann" with no middle name and "Mary" with middle
    name "Ann" agree on both fields.
    """
    if isinstance(middle, str) and normalize.middle_name(middle):
        return middle
    return normalize.middle_in_given(given) if isinstance(given, str) else None


def name_columns(by_field: dict[str, list]) -> dict[str, list]:
    """Raw name values per field -> the raw values each name encoding is computed from.

    A given name and surname that are a placeholder only together ("John" "Doe")
    become missing; ``first_name_canon`` comes from the given-name values and
    ``middle_name`` from ``middle_source``. Other fields pass through unchanged.
    """
    out = dict(by_field)
    first, last = out.get("first_name"), out.get("last_name")
    if first is not None and last is not None:
        pair = normalize.placeholder_pair
        drop = [isinstance(f, str) and isinstance(l, str) and pair(f, l) for f, l in zip(first, last)]
        if any(drop):
            out["first_name"] = first = [None if d else f for f, d in zip(first, drop)]
            out["last_name"] = [None if d else v for v, d in zip(last, drop)]
    if first is not None:
        out["first_name_canon"] = first
        out["middle_name"] = list(map(middle_source, out.get("middle_name", [None] * len(first)), first))
    return out


# -- files from outside the hub (the ``leadhub link`` command) --------------------------------------

def mappable_fields(settings: dict | None = None) -> list[str]:
    """Field names a ``leadhub link`` column mapping may use (derived fields are computed)."""
    return sorted(set(fields_of(settings or load_settings())) - set(DERIVED_FIELDS))


def read_mapping(mapping: dict, settings: dict | None = None) -> tuple[str | None, dict[str, dict]]:
    """``{"id": col, "fields": {field: col | [cols] | {"columns": [...], "format": ...}}}``.

    An unknown field name is an error naming the known ones (a typo must not
    silently drop evidence).
    """
    known = mappable_fields(settings)
    fields = {}
    for field, spec in mapping.get("fields", {}).items():
        if field not in known:
            raise ValueError(f"unknown field {field!r} in the column mapping; known fields: {', '.join(known)}")
        if isinstance(spec, str):
            spec = {"columns": [spec]}
        elif isinstance(spec, list):
            spec = {"columns": spec}
        else:
            spec = dict(spec)
            spec["columns"] = spec.get("columns") or [spec.pop("column")]
        fields[field] = spec
    return mapping.get("id"), fields


def encode_frame(frame, fields: dict[str, dict], encoder: Encoder):
    """Clear-text columns of a data frame -> {field: (n, width) words}. Nothing else survives.

    Mapping ``first_name`` also yields ``first_name_canon`` and ``middle_name``
    (see ``name_columns``).
    """
    texts, formats = {}, {}
    for field, spec in fields.items():
        if field not in encoder.fields or field in DERIVED_FIELDS:
            raise ValueError(f"unknown linkage field {field!r}; known: "
                             f"{', '.join(sorted(set(encoder.fields) - set(DERIVED_FIELDS)))}")
        missing = [c for c in spec["columns"] if c not in frame.columns]
        if missing:
            raise ValueError(f"mapping names column(s) not in the file: {', '.join(missing)}")
        parts = [frame[c].astype("string").fillna("").str.strip() for c in spec["columns"]]
        joined = parts[0]
        for p in parts[1:]:
            joined = joined + " " + p
        texts[field] = [v if v.strip() else None for v in joined.tolist()]
        formats[field] = spec.get("format")
    out = {}
    for field, values in name_columns(texts).items():
        fs = encoder.fields[field]
        # Values repeat a lot (names, birth dates): normalize and encode each distinct one once.
        codes, distinct = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
        canon = [canonical(fs, v, formats.get(field)) if isinstance(v, str) else None for v in distinct]
        out[field] = encoder.encode(field, canon)[codes]
    return out

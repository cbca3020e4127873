"""Normalization of identifiers before any hashing.

Two records of one person only get the same keyed token if their identifiers
are spelled the same, so every spelling difference that carries no meaning —
case, accents, punctuation, suffixes — is removed first. Values that mean
"not known" (placeholder names such as "Unknown" or "FNU", sentinel birth
dates such as 1900-01-01) are recognised here from the reference lists in
``transforms/reference/`` so the encodings can weigh them as missing; nickname
variants come from the maintained ``nicknames`` dataset (``given_name_forms``).

The text normalizers are memoized (``functools.lru_cache``, bounded to
``CACHE_SIZE`` distinct inputs each): an extract repeats the same names,
addresses and numbers on every row of a person, and Unicode decomposition plus
several regular expressions per value was a large share of intake time. They
are pure functions of their input and use no key, so sharing the caches across
pseudonymizers and keys is safe; ``typed=True`` keeps e.g. ``1`` and ``True``
apart, so a cached answer is always the one the input itself would get.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from datetime import date
from functools import cache, lru_cache
from pathlib import Path

from nicknames import NickNamer

# Distinct inputs remembered per normalizer. Bounded so that a file of millions of
# different people cannot grow memory: a few MB per normalizer when full.
CACHE_SIZE = 1 << 15
_memo = lru_cache(maxsize=CACHE_SIZE, typed=True)

REFERENCE_DIR = Path(__file__).with_name("reference")
# What agencies write when they do not know a name or a birth date (documented per row).
PLACEHOLDER_NAMES = REFERENCE_DIR / "placeholder_names.csv"
PLACEHOLDER_DATES = REFERENCE_DIR / "placeholder_dates.csv"
PLACEHOLDER_TEXT = REFERENCE_DIR / "placeholder_text.csv"   # addresses and towns ("Homeless")
# A digit identifier of at least this many digits, all the same (00000, 999999999), is a filler.
FILLER_DIGITS = 5
# Hypocoristics the maintained ``nicknames`` dataset lacks (it is English only), same format.
NICKNAMES_SUPPLEMENT = REFERENCE_DIR / "nicknames_supplement.csv"
# No living person was born before this year: earlier dates are entry errors or sentinels.
EARLIEST_BIRTH_YEAR = 1900
NAME_ROLES = ("given", "middle", "surname")

SUFFIXES = {"JR", "SR", "II", "III", "IV", "V", "2ND", "3RD"}


def _ascii_upper(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


_NOT_NAME = re.compile(r"[^A-Z \-]")
_NAME_SEPARATORS = re.compile(r"[\s\-]+")


@_memo
def _name_words(text: str | None) -> tuple[str, ...]:
    """``name_parts`` as an immutable tuple, so the cached value cannot be changed by a caller."""
    if not text:
        return ()
    cleaned = _NOT_NAME.sub("", _ascii_upper(text).replace("'", "").replace(".", " "))
    words = tuple(w for w in _NAME_SEPARATORS.split(cleaned) if w)
    return tuple(w for w in words if w not in SUFFIXES) or words


def name_parts(text: str | None) -> list[str]:
    """Upper-case ASCII words of a name, without punctuation or generational suffixes."""
    return list(_name_words(text))


@_memo
def surname(text: str | None) -> str:
    """Compound and hyphenated surnames are joined so 'Garcia-Lopez' == 'GARCIA LOPEZ'."""
    return "".join(_name_words(text))


def _given_index(words: tuple[str, ...]) -> int:
    """Position of the given name: the first word longer than an initial ("J. Robert" -> ROBERT)."""
    return next((i for i, w in enumerate(words) if len(w) > 1), 0)


@_memo
def given_name(text: str | None) -> str:
    """The given name as written: its first word that is not an initial, no nickname mapping.

    Nicknames are evidence of their own (``given_name_forms``): a nickname can
    stand for several formal names ("Bill": William or Robert), so mapping it
    to one of them would be a guess.
    """
    words = _name_words(text)
    return words[_given_index(words)] if words else ""


@_memo
def middle_in_given(text: str | None) -> str:
    """Words a given-name field holds after the given name ("Mary Ann" -> "ANN", "John Q" -> "Q")."""
    words = _name_words(text)
    return " ".join(words[_given_index(words) + 1:]) if words else ""


@_memo
def middle_name(text: str | None) -> str:
    """Middle name(s) or initial(s) as space-separated words; "" when missing or a placeholder."""
    if placeholder_name(text, "middle"):
        return ""
    return " ".join(_name_words(text))


# -- placeholders: values that say "not known" and must weigh as missing --------------------------

@cache
def _placeholders() -> dict[str, frozenset[str]]:
    """applies_to ("any", "given", "middle", "surname", "pair") -> normalized values."""
    found: dict[str, set[str]] = {}
    with open(PLACEHOLDER_NAMES, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            found.setdefault(row["applies_to"], set()).add(" ".join(_name_words(row["value"])))
    return {k: frozenset(v) for k, v in found.items()}


@cache
def _placeholder_dates() -> frozenset[str]:
    with open(PLACEHOLDER_DATES, newline="", encoding="utf-8") as f:
        return frozenset(date.fromisoformat(row["value"]).isoformat() for row in csv.DictReader(f))


@_memo
def placeholder_name(text: str | None, role: str) -> bool:
    """True when a name field (role given / middle / surname) holds a placeholder, not a name.

    Matching is on the normalized form ("n/a", "N.A." and "Baby-Girl" are
    spelled like the reference list). A single letter is no given name or
    surname (it is an initial), but it is a middle initial. Blank is not a
    placeholder: it is simply missing.
    """
    if role not in NAME_ROLES:
        raise ValueError(f"unknown name role {role!r}; known: {', '.join(NAME_ROLES)}")
    words = _name_words(text)
    if not words:
        return False
    form = " ".join(words)
    if role != "middle" and len(form.replace(" ", "")) == 1:
        return True
    lists = _placeholders()
    return form in lists.get("any", ()) or form in lists.get(role, ())


@cache
def _pair_surnames() -> frozenset[str]:
    return frozenset(pair.split()[-1] for pair in _placeholders().get("pair", ()))


@_memo
def _pair_surname(text: str | None) -> bool:
    words = _name_words(text)
    return len(words) == 1 and words[0] in _pair_surnames()


def placeholder_pair(given: str | None, surname_text: str | None) -> bool:
    """True for a given name and surname that only together are a placeholder ("John" "Doe").

    DOE alone is a real surname and JOHN a real given name; the pair is the
    convention for an unidentified person, so both weigh as missing. (Per row:
    the surname is looked at first, through a memo, since pairs rarely repeat.)
    """
    if not _pair_surname(surname_text):
        return False
    g = _name_words(given)
    return bool(g) and " ".join(g + _name_words(surname_text)) in _placeholders().get("pair", ())


@cache
def _placeholder_text() -> frozenset[str]:
    with open(PLACEHOLDER_TEXT, newline="", encoding="utf-8") as f:
        return frozenset(clean_text(row["value"]) for row in csv.DictReader(f))


def placeholder_text(text: str | None) -> bool:
    """True when an address or town field says there is none or it is not known ("Homeless", "N/A").

    Every person without an address shares it, so agreeing on it is no evidence.
    """
    return clean_text(text) in _placeholder_text() if text else False


def filler_digits(digits: str) -> bool:
    """True for a run of one repeated digit long enough to be a filler (00000, 9999999999)."""
    return len(digits) >= FILLER_DIGITS and len(set(digits)) == 1


def placeholder_date(d: date | None) -> bool:
    """True for sentinel birth dates (1900-01-01 and the like) and years no living person has."""
    return d is not None and (d.year < EARLIEST_BIRTH_YEAR or d.isoformat() in _placeholder_dates())


# -- nicknames --------------------------------------------------------------------------------------

@cache
def _nicknamer() -> NickNamer:
    """The ``nicknames`` dataset (pinned) plus the hub's supplement, both read from installed files."""
    lookup = NickNamer.default_lookup()
    with open(NICKNAMES_SUPPLEMENT, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["relationship"] == "has_nickname":
                lookup.setdefault(row["name1"].strip().lower(), set()).add(row["name2"].strip().lower())
    return NickNamer(nickname_lookup=lookup)


@_memo
def given_name_forms(text: str | None) -> tuple[str, ...]:
    """The given name, then every formal name it is a nickname of (sorted); () when missing.

    "Bill" -> (BILL, ROBERT, WILL, WILLIAM, WILLIS) and "William" ->
    (WILLIAM, BILL, ...): two given names agree on a canonical form when the
    sets share a member. A given-name field with several words also yields
    its words joined ("Mary Ann" -> MARYANN, as it is often written; not after
    an initial, "John Q"), with that form's own formal names.
    """
    words = _name_words(text)
    if not words:
        return ()
    at = _given_index(words)
    forms = [words[at]]
    rest = words[at + 1:]
    if rest and all(len(w) > 1 for w in rest):  # a double given name, not "John Q"
        forms.append("".join(words[at:]))
    nn = _nicknamer()
    formal = {"".join(_name_words(c)) for form in forms for c in nn.canonicals_of(form.lower())}
    out = list(dict.fromkeys(forms))
    return tuple(out + sorted(formal - set(out) - {""}))


_SSN_DIGITS = re.compile(r"\D")


@_memo
def ssn(text: str | None) -> str | None:
    """Nine digits, or None for missing or impossible numbers (never issued by SSA)."""
    if not text:
        return None
    digits = _SSN_DIGITS.sub("", text)
    if len(digits) != 9:
        return None
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(digits)) == 1 or digits in ("123456789", "078051120"):
        return None
    return digits


def sex(text: str | None) -> str | None:
    code = (text or "").strip().upper()[:1]
    return {"M": "M", "F": "F", "X": "X", "U": None}.get(code)


def age_on(dob: date | None, when: date | None) -> int | None:
    if not dob or not when:
        return None
    return when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day))


_NOT_TEXT = re.compile(r"[^A-Z0-9 ]")
_SPACES = re.compile(r"\s+")


@_memo
def clean_text(text: str | None) -> str | None:
    """Whitespace-collapsed, upper-cased free text (addresses)."""
    if not text:
        return None
    return _SPACES.sub(" ", _NOT_TEXT.sub(" ", _ascii_upper(text))).strip() or None


@_memo
def phone(text: str | None) -> str | None:
    digits = _SSN_DIGITS.sub("", text or "")
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return digits if len(digits) == 10 else None

"""Normalization of identifiers before any hashing.

Two records of one person only get the same keyed token if their identifiers
are spelled the same, so every spelling difference that carries no meaning —
case, accents, punctuation, suffixes, nicknames — is removed first.

The text normalizers are memoized (``functools.lru_cache``, bounded to
``CACHE_SIZE`` distinct inputs each): an extract repeats the same names,
addresses and numbers on every row of a person, and Unicode decomposition plus
several regular expressions per value was a large share of intake time. They
are pure functions of their input and use no key, so sharing the caches across
pseudonymizers and keys is safe; ``typed=True`` keeps e.g. ``1`` and ``True``
apart, so a cached answer is always the one the input itself would get.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

# Distinct inputs remembered per normalizer. Bounded so that a file of millions of
# different people cannot grow memory: a few MB per normalizer when full.
CACHE_SIZE = 1 << 15
_memo = lru_cache(maxsize=CACHE_SIZE, typed=True)

# Common English nicknames mapped to one canonical given name.
NICKNAMES = {
    "BILL": "WILLIAM", "BILLY": "WILLIAM", "WILL": "WILLIAM", "WILLY": "WILLIAM", "LIAM": "WILLIAM",
    "BOB": "ROBERT", "BOBBY": "ROBERT", "ROB": "ROBERT", "ROBBIE": "ROBERT", "BERT": "ROBERT",
    "JIM": "JAMES", "JIMMY": "JAMES", "JAMIE": "JAMES",
    "MIKE": "MICHAEL", "MIKEY": "MICHAEL", "MICKEY": "MICHAEL",
    "DICK": "RICHARD", "RICK": "RICHARD", "RICKY": "RICHARD", "RICH": "RICHARD",
    "TOM": "THOMAS", "TOMMY": "THOMAS",
    "JOE": "JOSEPH", "JOEY": "JOSEPH",
    "DAN": "DANIEL", "DANNY": "DANIEL",
    "DAVE": "DAVID", "DAVEY": "DAVID",
    "STEVE": "STEVEN", "STEPHEN": "STEVEN",
    "CHRIS": "CHRISTOPHER", "KIT": "CHRISTOPHER",
    "MATT": "MATTHEW", "TONY": "ANTHONY", "ANDY": "ANDREW", "DREW": "ANDREW",
    "ED": "EDWARD", "EDDIE": "EDWARD", "TED": "EDWARD", "TEDDY": "EDWARD",
    "CHARLIE": "CHARLES", "CHUCK": "CHARLES",
    "JACK": "JOHN", "JOHNNY": "JOHN", "JON": "JOHN",
    "GREG": "GREGORY", "JEFF": "JEFFREY", "JERRY": "GERALD", "LARRY": "LAWRENCE",
    "NICK": "NICHOLAS", "PAT": "PATRICK", "SAM": "SAMUEL", "BEN": "BENJAMIN",
    "ALEX": "ALEXANDER", "KEN": "KENNETH", "KENNY": "KENNETH", "RON": "RONALD",
    "DON": "DONALD", "TIM": "TIMOTHY", "FRED": "FREDERICK", "HANK": "HENRY", "HARRY": "HENRY",
    "LIZ": "ELIZABETH", "BETH": "ELIZABETH", "BETTY": "ELIZABETH", "LIZZIE": "ELIZABETH", "ELIZA": "ELIZABETH",
    "KATE": "KATHERINE", "KATIE": "KATHERINE", "KATHY": "KATHERINE", "CATHERINE": "KATHERINE",
    "KATHRYN": "KATHERINE",
    "PEGGY": "MARGARET", "MAGGIE": "MARGARET", "MEG": "MARGARET",
    "SUE": "SUSAN", "SUSIE": "SUSAN", "JENNY": "JENNIFER", "JEN": "JENNIFER",
    "PATTY": "PATRICIA", "TRISH": "PATRICIA", "BECKY": "REBECCA", "BECCA": "REBECCA",
    "DEBBIE": "DEBORAH", "DEB": "DEBORAH", "MANDY": "AMANDA", "VICKY": "VICTORIA", "TORI": "VICTORIA",
    "ABBY": "ABIGAIL", "ANNIE": "ANN", "ANNA": "ANN", "ANNE": "ANN", "NANCY": "ANN",
    "SALLY": "SARAH", "SARA": "SARAH", "JESS": "JESSICA", "JESSIE": "JESSICA",
    "CINDY": "CYNTHIA", "TERRY": "TERESA", "TERESA": "TERESA", "THERESA": "TERESA",
    # Common Spanish hypocoristics.
    "PEPE": "JOSE", "CHEPE": "JOSE", "PACO": "FRANCISCO", "PANCHO": "FRANCISCO", "LUPE": "GUADALUPE",
    "CHUY": "JESUS", "NACHO": "IGNACIO", "MEMO": "GUILLERMO", "LALO": "EDUARDO", "BETO": "ALBERTO",
}
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


@_memo
def given_name(text: str | None) -> str:
    """First word of a given name, nicknames mapped to the formal name."""
    parts = _name_words(text)
    if not parts:
        return ""
    return NICKNAMES.get(parts[0], parts[0])


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


def iso_date(d: date | None) -> str | None:
    return d.isoformat() if d else None


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

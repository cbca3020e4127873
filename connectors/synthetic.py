"""A fictional county's LEAD program: one extract per contract, plus the truth behind them.

The county runs LEAD in the precincts that ``transforms/evaluation.yaml`` does
not list as comparison precincts, during its program window. Four agencies see
the same true people, each through its own person numbers and its own spelling
of names, dates of birth and SSNs, so record linkage has real work to do.
Extracts land in ``inbox/<agency>/`` exactly as agencies would drop them; the
ground truth lands in ``answers/`` for tests and evaluation. The pipeline never
reads the answers.

Planted effect: the odds of any re-arrest within 365 days of the index date are
``ODDS_RATIO_LEAD`` (0.42) times as high for LEAD participants as for the
comparison group, adjusted for prior arrests, age and sex (see ``MODEL``).

Cohorts are built so that the pipeline's cohort rule finds exactly the true
ones when linkage is right: only LEAD people are referred, and the only
arrests with a LEAD-eligible charge in a comparison precinct inside the
program window belong to comparison people, on or after their index date.

Answers (no name, date of birth, SSN, address, phone or agency id in any of them):
  records.csv  contract, row_number (1-based data row of that contract's file),
               true_person_id: the true person behind every data row
  persons.csv  the LEAD and comparison people: cohort, index date, sex, race,
               ethnicity, age at index, arrests in the 365 days before index
  truth.json   the planted model and the true outcome aggregates per cohort and
               window, counted as marts.outcomes counts them; referrals by month

Hardness: agencies write people the way real administrative data does, so linkage
meets what it meets in practice (rates are per record unless said otherwise; see
``VARIANT_RATES`` and the people section below):
  typos, case and punctuation        4% and 2%; guesses
  nicknames                          10% of records whose given name has one in the
                                     maintained ``nicknames`` dataset (a guess); each
                                     person has one nickname from that dataset, never
                                     from a hand list
  placeholder names                  1% of given names, 1% of surnames ("Unknown",
                                     "FNU"/"LNU", "Declined", "Resident", "Baby Boy"...)
                                     and 0.5% of given names cut to an initial (a guess)
  household member's birth date      1% of records of people who live with a relative
  blank birth date                   1%, in extracts whose contract lets dob be empty
                                     (police referrals, treatment clients)
  twins                              10% of the pairs of relatives living together (1.5%
                                     of people): same surname, address and birth date,
                                     different given names and SSNs
The 1% rates are pseudopeople's defaults for the same noise types (``use_fake_name``,
``copy_from_household_member``, ``leave_blank``: cell probability 0.01 in its
``ColumnNoiseType``); they are themselves its authors' choices, not measurements. About
3% of US births are twins (CDC NVSS, twin birth rate 31-33 per 1,000 births in
2014-2022); that both twins appear in one county's justice data is a guess.

Scale: people are generated in fixed blocks of ``BLOCK_PEOPLE``, each drawing
from its own random stream seeded by (seed, block number) and written before
the next block is built. Memory stays flat, and the output depends only on the
arguments of ``generate``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import yaml
from nicknames import NickNamer
from tqdm import tqdm

from connectors.contracts import Column, Contract, load_contracts

TRANSFORMS_DIR = Path(__file__).resolve().parent.parent / "transforms"
EVALUATION_FILE = TRANSFORMS_DIR / "evaluation.yaml"
OFFENSE_CODES_FILE = TRANSFORMS_DIR / "reference" / "offense_codes.csv"

DATA_START = date(2020, 1, 1)
DATA_END = date(2024, 12, 31)
BLOCK_PEOPLE = 10_000          # part of the output's definition: each block has its own stream
FOLLOW_UP_DAYS = 365           # the window of the planted model

NONE, LEAD, COMPARISON = 0, 1, 2
COHORT_NAMES = {NONE: "none", LEAD: "lead", COMPARISON: "comparison"}

# --- the planted outcome model ---------------------------------------------------------------
# logit P(any arrest in (index, index+365]) = intercept + any_prior_365*[prior arrests > 0]
#   + age_per_decade*(age_at_index - 35)/10 + male*[sex == M] + lead*[LEAD]
# The intercept is solved for at run time so the comparison group re-arrests at
# TARGET_COMPARISON_REARREST.
ODDS_RATIO_LEAD = 0.42
TARGET_COMPARISON_REARREST = 0.60
MODEL = {"any_prior_365": 0.9, "age_per_decade": -0.25, "male": 0.3, "lead": math.log(ODDS_RATIO_LEAD)}
EXTRA_REARRESTS_MEAN = 0.8      # re-arrested people have 1 + Poisson(0.8) arrests in the year
# P(0..4 arrests in the 365 days before index); LEAD people carry slightly more history.
PRIOR_ARRESTS_P = {LEAD: (0.30, 0.30, 0.20, 0.12, 0.08), COMPARISON: (0.38, 0.30, 0.17, 0.10, 0.05)}

# --- volumes -------------------------------------------------------------------------------------
MEAN_ARRESTS = 2.5              # background arrests per person over the data period (gamma-Poisson)
ARREST_SPREAD = 1.0             # gamma shape: smaller means a more concentrated "frequent flyer" tail
CHARGES_P = (0.50, 0.32, 0.18)  # 1, 2 or 3 charges per arrest
HOME_PRECINCT_SHARE = 0.7       # arrests in the person's usual precinct
PRECINCT_WEIGHTS = {"NORTH": 0.22, "SOUTH": 0.22, "EAST": 0.15, "WEST": 0.15, "CENTRAL": 0.26}
BOOKED_SHARE = 0.8
EXTRA_BOOKINGS = 0.10           # warrant and other-agency bookings, per arrest booking
PROSECUTOR_SHARE = 0.6
EXTRA_CASES = 0.05              # prosecutor cases with no police arrest, per referred arrest
SECOND_REFERRAL_SHARE = 0.22
REFERRAL_TYPES = {"arrest_diversion": 0.55, "social_contact": 0.35, "community": 0.10}
REFERRAL_CATEGORY = {            # offense_category of the conduct behind a referral (None = not recorded)
    "arrest_diversion": {"drug": 0.72, "public_order": 0.28},
    "social_contact": {"drug": 0.40, "public_order": 0.20, "property": 0.10, "other": 0.10, None: 0.20},
    "community": {None: 0.60, "other": 0.20, "drug": 0.20},
}
OFFICERS = 150
WARRANT_CODES = {"OTH01": 0.5, "OTH03": 0.2}   # charges of extra bookings; the rest as arrests
OTHER_CLIENTS = 0.004           # share of non-LEAD people who are treatment clients on their own
CONTACTS_PER_DAY = 0.1          # about three service contacts a month while an episode is open
SERVICE_TYPES = {"case_management": 0.55, "housing": 0.15, "sud_treatment": 0.12,
                 "mental_health": 0.12, "benefits": 0.06}
CLIENT_SOURCES = {"self": 0.40, "court": 0.35, "other": 0.25}
# No 'deceased': a dead client would go on being arrested in these data.
EXIT_REASONS = {"completed": 0.36, "disengaged": 0.36, "moved": 0.10, "incarcerated": 0.10, "other": 0.08}
CONSENT = {"active": 0.85, "revoked": 0.06, "expired": 0.05, "none": 0.04}
DECISIONS = ("filed", "declined", "diverted", "pending")
DECISION_P = (0.58, 0.25, 0.07, 0.10)
DECISION_P_LEAD = (0.36, 0.22, 0.32, 0.10)    # LEAD participants' cases after their index date
DISPOSITIONS = ("convicted", "dismissed", "acquitted", "pending")
DISPOSITION_P = (0.60, 0.25, 0.05, 0.10)

# --- people --------------------------------------------------------------------------------------
SEX_P = {"M": 0.72, "F": 0.27, "X": 0.01}
RACE_P = {"WHITE": 0.46, "BLACK": 0.30, "ASIAN": 0.08, "NATIVE": 0.06, "PACIFIC": 0.03, "OTHER": 0.07}
HISPANIC_SHARE = 0.16
HOUSEHOLD_SHARE = 0.15          # people living with a relative of the same surname
TWIN_SHARE = 0.10               # of those pairs: twins, born on the same day (see the docstring)
HOMELESS_SHARE, SHELTER_SHARE = 0.08, 0.04
PHONE_SHARE = 0.85
MIDDLE_INITIAL_SHARE = 0.7
COMPOUND_SURNAME = {"hispanic": 0.30, "other": 0.01}   # gives ~5% of people a compound surname

# --- how agencies record people ------------------------------------------------------------------
# Rates per record (a referral, arrest, booking, case or client). Agencies copy most records from
# their own master record of the person, which was itself typed with these rates, and retype the
# rest, so one agency id usually but not always carries one spelling.
RETYPED_SHARE = 0.2
VARIANT_RATES = {
    "typo": 0.04,               # substitution, transposition, deletion or insertion in a name
    "nickname": 0.10,           # of records whose given name has a nickname in the dataset
    "placeholder_first": 0.01,  # given name recorded as 'Unknown', 'FNU', 'Baby Boy'...
    "placeholder_last": 0.01,   # surname recorded as 'Unknown', 'LNU', 'Resident'...
    "initial_only": 0.005,      # given name cut to its first letter
    "household_dob": 0.01,      # of records of people living with a relative: the relative's dob
    "dob_missing": 0.01,        # blank birth date, where the extract's contract allows one
    "middle_initial": 0.03,     # given name recorded as 'John Q'
    "compound": 0.25,           # of records of compound surnames: 'Garcia Lopez', 'Garcia' or 'Lopez'
    "swap_names": 0.01,         # first and last name swapped
    "swap_dob": 0.02,           # day and month of birth swapped (only possible when day <= 12)
    "ssn_missing": 0.25,
    "format": 0.02,             # case, whitespace or punctuation ('O'Brien' vs 'OBRIEN')
    "race_unknown": 0.03,
    "ethnicity_unknown": 0.04,
}
DUPLICATE_ID_SHARE = 0.04       # of people with 2+ records in an agency: registered twice there
DUPLICATE_AGENCIES = ("police", "jail", "prosecutor")
# Each agency's own conventions: case, accents and apostrophes, SSN layout, how "no address" reads.
AGENCY_STYLE = {
    "police": {"upper_first": False, "upper_last": False, "upper_address": False, "ascii": False,
               "ssn_dashes": True, "homeless": "TRANSIENT"},
    "jail": {"upper_first": True, "upper_last": True, "upper_address": True, "ascii": True,
             "ssn_dashes": False, "homeless": "HOMELESS"},
    "prosecutor": {"upper_first": False, "upper_last": True, "upper_address": True, "ascii": True,
                   "ssn_dashes": True, "homeless": "NO FIXED ADDRESS"},
    "treatment": {"upper_first": False, "upper_last": False, "upper_address": False, "ascii": False,
                  "ssn_dashes": True, "homeless": "No fixed address"},
}
# Person numbers: prefix and digits. Numbers are scrambled so they say nothing about order.
PERSON_ID_SCHEMES = {"police": ("P", 7), "prosecutor": ("D", 6), "jail": ("J", 8), "treatment": ("C", 5)}
RECORD_ID_SCHEMES = {"referral": ("R", 6), "arrest": ("A", 8), "booking": ("B", 8), "case": ("K", 7),
                     "episode": ("E", 6), "contact": ("S", 8)}

# --- name pools (roughly by frequency, most common first) --------------------------------------------
# No name equals a code value of any extract (race WHITE or BLACK, say), so checking that no
# identifier value leaks into other columns or files is never ambiguous.
MALE_NAMES = """James Michael Robert John David William Richard Joseph Thomas Christopher Charles
Daniel Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian Timothy Ronald
George Jason Edward Jeffrey Ryan Jacob Nicholas Gary Eric Jonathan Stephen Larry Justin Scott
Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron
José Adam Nathan Henry Zachary Douglas Peter Kyle Noah Ethan Jeremy Christian Walter Keith Austin
Roger Terry Sean Gerald Carl Dylan Harold Jordan Jesse Bryan Lawrence Arthur Gabriel Bruce Logan
Billy Joe Albert Willie Alan Juan Elijah Wayne Randy Vincent Roy Eugene Russell Bobby Louis Philip
Carlos Luis Miguel Jesús Francisco Alejandro Antonio Manuel Ricardo Marcus Andre Darnell Tyrone
Jamal Malik Terrell DeShawn Dmitri Minh Tuan Hung Wei Jin Hiroshi Sione Tavita""".split()
FEMALE_NAMES = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy
Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie
Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole
Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane Olivia
Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan
Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances Jean
Alice Judy Isabella Julia Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie Theresa
Diana Brittany Doris Kayla Alexis Lori Marie Guadalupe Rosa Ana Carmen Yolanda Lucía Alejandra
Keisha Latoya Tamika Shanice Ebony Aaliyah Mai Linh Mei Yuki Leilani Winona""".split()
SURNAMES = """Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore
Jackson Martin Lee Thompson Whitaker Harris Clark Lewis Robinson Walker Young Allen King Wright Scott
Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans
Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Peterson Cooper Reed Bailey Bell Kelly
Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders Myers Long Ross
Foster Powell Jenkins Perry Russell Sullivan Fisher Henderson Coleman Simmons Patterson Jordan
Reynolds Hamilton Graham Wallace Weston Cole Hayes Bryant Gibson Ellis Stevens Murray Ford Marshall
Owens McDonald Harrison Kennedy Wells Dixon Robertson Blackwell Daniels Palmer Mills Hunt Warren
Knight Ferguson Rose Stone Hawkins Dunn Perkins Hudson Spencer Stephens Pierce Holmes Greene
Barnes Fox Hart Freeman Wagner Weaver Carroll Duncan Snyder Franklin Lawson Fields Burke
Washington Jefferson Banks Mack Battle O'Brien O'Neil O'Connor D'Angelo McCarthy MacKenzie
St._John Van_Dyke Nguyen Tran Pham Le Huynh Vo Kim Park Choi Chen Wang Li Zhang Liu Wong Chan
Yamamoto Tanaka Sato Patel Singh Shah Kaur Ali Khan Ahmed Hassan Mohamed Abdi Yusuf Tesfaye Haile
Ivanov Petrov Kowalski Nowak Schmidt Muller Olsen Larsen Johansson Lindqvist Horvath Begay Yazzie
Tsosie Whitehorse Redcloud Sampson Tafuna Fonoti Kealoha Fifita""".split()
HISPANIC_SURNAMES = """Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez
Torres Flores Rivera Gomez Diaz Reyes Morales Cruz Ortiz Gutierrez Chavez Ramos Ruiz Alvarez
Mendoza Vasquez Castillo Jimenez Moreno Romero Herrera Medina Aguilar Vargas Guzman Mendez Castro
Salazar Delgado Soto Contreras Peña Muñoz Ibáñez Núñez Rojas Espinoza Silva Sandoval Cabrera
Fuentes Valdez Acosta Campos De_La_Cruz Del_Rio Navarro Cervantes Villanueva Zamora Orozco""".split()
# Multi-word surnames are written with '_' above so that split() keeps them whole.
SURNAMES = [s.replace("_", " ") for s in SURNAMES]
HISPANIC_SURNAMES = [s.replace("_", " ") for s in HISPANIC_SURNAMES]
# What agencies write when they do not know a name. Every placeholder is marked as such here so
# tests can tell them from identifiers: they identify nobody and may equal a code value
# ('UNKNOWN', 'declined').
PLACEHOLDER_FIRST = ("Unknown", "FNU", "Declined", "Refused", "None Given")
PLACEHOLDER_FIRST_BY_SEX = {"M": "Baby Boy", "F": "Baby Girl"}
# Not 'Doe' alone: it is a real surname; 'John Doe' is the convention, for a wholly unknown man.
PLACEHOLDER_LAST = ("Unknown", "LNU", "Declined", "Resident", "Last Name")
PLACEHOLDER_NAMES = frozenset(PLACEHOLDER_FIRST + PLACEHOLDER_LAST
                              + tuple(PLACEHOLDER_FIRST_BY_SEX.values()))
MIDDLE_INITIALS = "ABCDEFGHIJKLMNOPRSTW"
STREETS = """Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Jefferson Madison Lincoln
Jackson Union Market Pike Yesler Cherry Spruce Alder Broadway Rainier Aurora Fremont Ballard
Beacon Delridge Holly Juniper Willow Birch Ash Columbia Marion Spring Seneca University Harrison
Mercer""".split()
STREET_SUFFIXES = ("St", "Ave", "Way", "Pl", "Blvd", "Rd", "Dr", "Ct", "Ln")
STREET_DIRECTIONS = ("", "", "", "N ", "S ", "NE ", "SW ")
SHELTERS = ("77 S Washington St", "1902 2nd Ave", "2515 Western Ave", "318 2nd Ave Ext S",
            "1561 Alaskan Way S", "600 4th Ave")
AREA_CODES = ("206", "253", "360", "425")

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
NULL_DAY = np.iinfo(np.int64).min      # missing date / timestamp in the int arrays below
TABLE_FIRST, TABLE_LAST = date(1940, 1, 1), date(2030, 12, 31)
SSN_SPACE = 898 * 99 * 9999            # areas 001-665 and 667-899, groups 01-99, serials 0001-9999


# === small helpers ==============================================================================

def _day(d: date) -> int:
    """Days since 1970-01-01: every date below is an int so numpy can do the arithmetic."""
    return d.toordinal() - EPOCH_ORDINAL


def _date(day: int) -> date:
    return date.fromordinal(int(day) + EPOCH_ORDINAL)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day arrays of day numbers."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _age(dob: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years of age on a date, as people count birthdays."""
    by, bm, bd = _ymd(dob)
    oy, om, od = _ymd(on)
    return oy - by - ((om * 100 + od) < (bm * 100 + bd))


def _pick(rng: np.random.Generator, weights: dict, n: int) -> np.ndarray:
    """n draws of the keys of a {value: weight} dict, as an object array."""
    keys = np.empty(len(weights), dtype=object)
    keys[:] = list(weights)
    p = np.array(list(weights.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _zipf(n: int) -> np.ndarray:
    """Frequency weights for a list ordered from most to least common."""
    w = 1.0 / (np.arange(n) + 8.0)
    return w / w.sum()


def _obj(values) -> np.ndarray:
    """A 1-d object array of any iterable (np.array would make fixed-width strings)."""
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat indices start[i] .. start[i]+count[i]-1 for every i, in order."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - group_start)


def _seq(counts: np.ndarray) -> np.ndarray:
    """1..count[i] for every i, concatenated: charge numbers within their record."""
    return _expand(np.ones(len(counts), dtype=np.int64), counts)


def _ascii(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _map(values: np.ndarray, fn) -> np.ndarray:
    """Apply fn to every non-null value, once per distinct value (names repeat a lot)."""
    seen: dict = {}
    out = values.copy()
    for i, v in enumerate(values.tolist()):
        if v is not None:
            r = seen.get(v)
            if r is None:
                r = seen[v] = fn(v)
            out[i] = r
    return out


def _scramble(rng: np.random.Generator, space: int) -> tuple[int, int]:
    """Multiplier and shift of k -> (a*k + b) mod space, a bijection when gcd(a, space) == 1."""
    while True:
        a = int(rng.integers(space // 3, space))
        if math.gcd(a, space) == 1:
            return a, int(rng.integers(0, space))


# === reference data =============================================================================

@dataclass(frozen=True)
class _Offenses:
    codes: np.ndarray          # object: offense codes
    severity: np.ndarray       # object: default severity
    eligible: np.ndarray       # bool: LEAD-eligible
    weight: np.ndarray         # how common each code is among arrests


# Relative frequency of each code among arrest charges (codes not listed get weight 2).
OFFENSE_WEIGHTS = {"DRG01": 12, "DRG02": 8, "DRG03": 4, "DRG04": 2, "PRS01": 3, "PRS02": 2,
                   "POR01": 8, "POR02": 6, "POR03": 3, "POR04": 4, "PRP01": 10, "PRP02": 3,
                   "PRP03": 2, "PRP04": 4, "PRP05": 2, "PER01": 6, "PER02": 2, "PER03": 1,
                   "PER04": 3, "OTH01": 8, "OTH02": 6, "OTH03": 4}


def _offenses() -> _Offenses:
    with open(OFFENSE_CODES_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return _Offenses(
        codes=_obj(r["offense_code"] for r in rows),
        severity=_obj(r["default_severity"] for r in rows),
        eligible=np.array([r["lead_eligible"].strip().lower() == "true" for r in rows]),
        weight=np.array([OFFENSE_WEIGHTS.get(r["offense_code"], 2) for r in rows], dtype=float),
    )


@cache
def _nicknames() -> dict[str, tuple[str, ...]]:
    """Given name -> its nicknames in the ``nicknames`` dataset, title-cased and sorted (so a
    draw by index is the same on every machine). Names the dataset does not know have none."""
    namer = NickNamer()
    out = {}
    for name in set(MALE_NAMES) | set(FEMALE_NAMES):
        nicks = sorted(n.title() for n in namer.nicknames_of(name) if n.lower() != name.lower())
        if nicks:
            out[name] = tuple(nicks)
    return out


def _draw_nicknames(rng: np.random.Generator, first: np.ndarray) -> np.ndarray:
    """Each person's one nickname (None when the dataset has none for the given name)."""
    table = _nicknames()
    u = rng.random(len(first))
    out = np.full(len(first), None, dtype=object)
    for i, name in enumerate(first.tolist()):
        nicks = table.get(name)
        if nicks:
            out[i] = nicks[int(u[i] * len(nicks))]
    return out


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# === date and timestamp text ====================================================================

_TIME_DIRECTIVE = re.compile(r"%[HIMSpf]")


@cache
def _day_table(fmt: str) -> np.ndarray:
    """Every day of TABLE_FIRST..TABLE_LAST formatted once, so formatting is an array lookup."""
    first = _day(TABLE_FIRST)
    return _obj(_date(first + i).strftime(fmt) for i in range(_day(TABLE_LAST) - first + 1))


@cache
def _minute_table(fmt: str) -> np.ndarray:
    base = datetime(2000, 1, 1)
    return _obj((base + timedelta(minutes=m)).strftime(fmt) for m in range(1440))


def _format_days(fmt: str, days: np.ndarray) -> list:
    days = np.asarray(days, dtype=np.int64)
    out = np.full(len(days), None, dtype=object)
    ok = days != NULL_DAY
    out[ok] = _day_table(fmt)[days[ok] - _day(TABLE_FIRST)]
    return out.tolist()


def _format_minutes(fmt: str, minutes: np.ndarray) -> list:
    """Timestamps held as minutes since 1970; split the format into its date and time halves."""
    minutes = np.asarray(minutes, dtype=np.int64)
    out = np.full(len(minutes), None, dtype=object)
    ok = minutes != NULL_DAY
    m = minutes[ok]
    cut = _TIME_DIRECTIVE.search(fmt)
    if cut and not re.search(r"%[^HIMSpf%]", fmt[cut.start():]):
        date_part = _day_table(fmt[:cut.start()])[m // 1440 - _day(TABLE_FIRST)]
        out[ok] = date_part + _minute_table(fmt[cut.start():])[m % 1440]
    else:  # a format that mixes date and time directives: slow but correct
        epoch = datetime(1970, 1, 1)
        out[ok] = [(epoch + timedelta(minutes=int(v))).strftime(fmt) for v in m]
    return out.tolist()


# === atomic writers =============================================================================

class _AtomicCsv:
    """A CSV written as ``name.part`` and renamed when complete, so a watcher never sees half a file."""

    def __init__(self, path: Path, header: list[str] | None, delimiter: str = ",",
                 quotechar: str = '"', encoding: str = "utf-8"):
        self.path = Path(path)
        self.part = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.part, "w", newline="", encoding=encoding)
        self._csv = csv.writer(self._file, delimiter=delimiter, quotechar=quotechar,
                               lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self.rows = 0
        if header is not None:
            self._csv.writerow(header)

    def write_columns(self, columns: list[list]) -> None:
        if columns and len(columns[0]):
            self._csv.writerows(zip(*columns))
            self.rows += len(columns[0])

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.part, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
            self.part.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ExtractWriter(_AtomicCsv):
    """One contract's file: columns, order, header, delimiter and date formats all from the contract."""

    def __init__(self, directory: Path, contract: Contract, stamp: str):
        fmt = contract.format
        name = contract.file_pattern.replace("*", stamp)
        super().__init__(directory / contract.agency / name,
                         contract.column_names if fmt.header else None,
                         fmt.delimiter, fmt.quotechar, fmt.encoding)
        self.contract = contract

    def write(self, ident: dict[str, np.ndarray], plain: dict[str, np.ndarray]) -> int:
        """Identifier columns are filled by their role, the others by name; returns rows written."""
        first = self.rows
        columns = []
        for col in self.contract.columns:
            source = ident.get(col.identifier) if col.identifier else plain.get(col.name)
            if source is None:
                raise KeyError(f"the generator has no values for {self.contract.name}.{col.name}")
            columns.append(_render(col, source))
        self.write_columns(columns)
        return self.rows - first


def _render(col: Column, values) -> list:
    if col.type == "date":
        return _format_days(col.formats[0], values)
    if col.type == "timestamp":
        return _format_minutes(col.formats[0], values)
    return np.asarray(values).tolist() if col.type == "integer" else list(values)


# === the run's fixed parts ======================================================================

class _World:
    """Everything decided once per run: calendar, cohorts, id schemes, model intercept, counters."""

    def __init__(self, people: int, seed: int, lead: int, comparison: int):
        if people < 1 or lead < 0 or comparison < 0:
            raise ValueError("people must be positive and cohort sizes not negative")
        if lead + comparison > people:
            raise ValueError(f"{lead} LEAD + {comparison} comparison people do not fit in {people} people")
        if people > SSN_SPACE:
            raise ValueError("more people than distinct valid-looking SSNs")
        self.people, self.seed, self.lead, self.comparison = people, seed, lead, comparison
        self.contracts = load_contracts()
        expected = {"police_referrals", "police_arrests", "prosecutor_cases", "jail_bookings",
                    "treatment_clients", "treatment_episodes", "treatment_contacts"}
        if set(self.contracts) != expected:
            unknown = sorted(set(self.contracts) ^ expected)
            raise ValueError(f"the synthetic generator does not know how to fill: {', '.join(unknown)}")

        ev = yaml.safe_load(EVALUATION_FILE.read_text())
        self.d0, self.d1 = _day(DATA_START), _day(DATA_END)
        self.p0, self.p1 = _day(_as_date(ev["program_start"])), _day(_as_date(ev["program_end"]))
        self.windows = tuple(int(w) for w in ev["windows_days"])
        if self.p0 - FOLLOW_UP_DAYS < self.d0 or self.p1 + FOLLOW_UP_DAYS > self.d1:
            raise ValueError("the program window needs a full year of data before and after it")
        self.precincts = _obj(self.contracts["police_arrests"].column("precinct").known_values)
        comparison_set = set(ev["comparison_precincts"])
        self.is_comparison_precinct = np.array([p in comparison_set for p in self.precincts])
        self.comparison_precincts = np.flatnonzero(self.is_comparison_precinct)
        self.lead_precincts = np.flatnonzero(~self.is_comparison_precinct)
        w = np.array([PRECINCT_WEIGHTS.get(p, 0.2) for p in self.precincts])
        self.precinct_p = w / w.sum()
        self.offenses = _offenses()
        off = self.offenses
        self.code_p = off.weight / off.weight.sum()
        self.eligible_codes = np.flatnonzero(off.eligible)
        self.eligible_p = off.weight[off.eligible] / off.weight[off.eligible].sum()
        self.other_codes = np.flatnonzero(~off.eligible)
        self.other_p = off.weight[~off.eligible] / off.weight[~off.eligible].sum()
        warrant = np.array([WARRANT_CODES.get(c, 0.0) for c in off.codes])
        self.warrant_p = warrant + (1 - warrant.sum()) * self.code_p

        rng = np.random.default_rng([seed, 0])
        chosen = rng.choice(people, size=lead + comparison, replace=False)
        self.cohort = np.zeros(people, dtype=np.int8)
        self.cohort[chosen[:lead]] = LEAD
        self.cohort[chosen[lead:]] = COMPARISON
        self.person_ids = {a: (p, d, *_scramble(rng, 10 ** d)) for a, (p, d) in PERSON_ID_SCHEMES.items()}
        self.ssn_scramble = _scramble(rng, SSN_SPACE)
        self.officers = _obj(sorted({f"{x:04d}" for x in rng.integers(1000, 10000, OFFICERS)}))
        self.intercept = _calibrate(np.random.default_rng([seed, 2]), self)
        self.next_person = {a: 0 for a in PERSON_ID_SCHEMES}
        self.next_record = {k: 1 for k in RECORD_ID_SCHEMES}
        self.tid_width = max(6, len(str(people)))

    def record_ids(self, kind: str, n: int) -> np.ndarray:
        prefix, width = RECORD_ID_SCHEMES[kind]
        start = self.next_record[kind]
        self.next_record[kind] += n
        return _obj(f"{prefix}{k:0{width}d}" for k in range(start, start + n))

    def person_ids_for(self, agency: str, n: int) -> np.ndarray:
        """n new person numbers of an agency; past the scheme's space they simply grow a digit."""
        prefix, digits, a, b = self.person_ids[agency]
        space = 10 ** digits
        start = self.next_person[agency]
        self.next_person[agency] += n
        return _obj(f"{prefix}{(a * k + b) % space:0{digits}d}" if k < space else f"{prefix}{k}"
                    for k in range(start, start + n))


def _draw_dob(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ages 18 to 70 on 2022-01-01, most people in their thirties and forties."""
    age_years = 18 + 52 * rng.beta(2.0, 3.2, n)
    return _day(date(2022, 1, 1)) - np.round(age_years * 365.25).astype(np.int64)


def _draw_index(rng: np.random.Generator, w: _World, cohort: np.ndarray) -> np.ndarray:
    """Comparison index dates spread evenly; referrals ramp up as the program grows (density 1+t)."""
    u = rng.random(len(cohort))
    span = w.p1 - w.p0
    ramp = (np.sqrt(1 + 3 * u) - 1) * span
    even = u * span
    return np.where(cohort == LEAD, w.p0 + np.floor(ramp), w.p0 + np.floor(even)).astype(np.int64)


def _logit(intercept: float, prior: np.ndarray, age: np.ndarray, male: np.ndarray,
           lead: np.ndarray) -> np.ndarray:
    """The planted model's linear predictor (see MODEL)."""
    return (intercept + MODEL["any_prior_365"] * (prior > 0) + MODEL["age_per_decade"] * (age - 35) / 10
            + MODEL["male"] * male + MODEL["lead"] * lead)


def _calibrate(rng: np.random.Generator, w: _World, n: int = 200_000) -> float:
    """The intercept that gives the comparison group TARGET_COMPARISON_REARREST, by bisection
    over a large sample drawn exactly as comparison people are."""
    cohort = np.full(n, COMPARISON)
    dob = _draw_dob(rng, n)
    age = _age(dob, _draw_index(rng, w, cohort))
    male = _pick(rng, SEX_P, n) == "M"
    prior = rng.choice(5, size=n, p=PRIOR_ARRESTS_P[COMPARISON])
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        rate = np.mean(1 / (1 + np.exp(-_logit(mid, prior, age, male, np.zeros(n)))))
        lo, hi = (mid, hi) if rate < TARGET_COMPARISON_REARREST else (lo, mid)
    return (lo + hi) / 2


# === one block of people ========================================================================

@dataclass
class _People:
    gid: np.ndarray            # global person number (0-based); true_person_id is T + gid + 1
    cohort: np.ndarray
    sex: np.ndarray
    race: np.ndarray
    ethnicity: np.ndarray
    dob: np.ndarray
    first: np.ndarray
    nick: np.ndarray           # nickname or None
    relative: np.ndarray       # index (in the block) of the relative living with them, or -1
    middle: np.ndarray         # middle initial or None
    last: np.ndarray
    compound: np.ndarray       # bool: surname is 'A-B'
    ssn: np.ndarray            # nine digits
    address: np.ndarray        # None for people without a fixed address
    phone: np.ndarray
    home: np.ndarray           # usual precinct (index into World.precincts)
    rate: np.ndarray           # expected background arrests over the data period
    index: np.ndarray          # index day, NULL_DAY for cohort none
    age_at_index: np.ndarray
    prior: np.ndarray          # arrests in the 365 days before index
    after: np.ndarray          # arrests in the 365 days after index

    @property
    def n(self) -> int:
        return len(self.gid)


def _names(rng: np.random.Generator, sex: np.ndarray, hispanic: np.ndarray) -> tuple:
    n = len(sex)
    male, female = _obj(MALE_NAMES), _obj(FEMALE_NAMES)
    as_male = (sex == "M") | ((sex == "X") & (rng.random(n) < 0.5))
    first = np.where(as_male, male[rng.choice(len(male), n, p=_zipf(len(male)))],
                     female[rng.choice(len(female), n, p=_zipf(len(female)))])
    general, hisp = _obj(SURNAMES), _obj(HISPANIC_SURNAMES)
    from_hisp = hispanic & (rng.random(n) < 0.8)

    def surname():
        return np.where(from_hisp, hisp[rng.choice(len(hisp), n, p=_zipf(len(hisp)))],
                        general[rng.choice(len(general), n, p=_zipf(len(general)))])
    last, second = surname(), surname()
    compound = (rng.random(n) < np.where(hispanic, COMPOUND_SURNAME["hispanic"], COMPOUND_SURNAME["other"]))
    compound &= last != second
    last = np.where(compound, last + "-" + second, last)
    middle = np.where(rng.random(n) < MIDDLE_INITIAL_SHARE,
                      _obj(MIDDLE_INITIALS)[rng.integers(0, len(MIDDLE_INITIALS), n)], None)
    return first.astype(object), middle.astype(object), last.astype(object), compound


def _ssns(w: _World, gid: np.ndarray) -> np.ndarray:
    """Distinct, valid-looking SSNs: a scrambled person number spread over areas, groups, serials."""
    a, b = w.ssn_scramble
    v = (gid.astype(object) * a + b) % SSN_SPACE     # Python ints: a * gid can exceed int64
    v = np.array(v.tolist(), dtype=np.int64)
    area = v // (99 * 9999)
    area = np.where(area < 665, area + 1, area + 2)  # skip 000 and 666
    group = (v // 9999) % 99 + 1
    serial = v % 9999 + 1
    return _obj(f"{x:03d}{y:02d}{z:04d}" for x, y, z in zip(area.tolist(), group.tolist(), serial.tolist()))


def _addresses(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(address or None, housed flag); shelters are shared by many people, as in life."""
    kind = rng.choice(3, size=n, p=(1 - HOMELESS_SHARE - SHELTER_SHARE, HOMELESS_SHARE, SHELTER_SHARE))
    number = rng.integers(100, 20000, n)
    street = rng.integers(0, len(STREETS), n)
    suffix = rng.integers(0, len(STREET_SUFFIXES), n)
    direction = rng.integers(0, len(STREET_DIRECTIONS), n)
    apt = np.where(rng.random(n) < 0.25, rng.integers(1, 400, n), 0)
    shelter = rng.integers(0, len(SHELTERS), n)
    out = np.empty(n, dtype=object)
    for i in range(n):
        if kind[i] == 0:
            unit = f" Apt {apt[i]}" if apt[i] else ""
            out[i] = (f"{number[i]} {STREET_DIRECTIONS[direction[i]]}{STREETS[street[i]]} "
                      f"{STREET_SUFFIXES[suffix[i]]}{unit}")
        elif kind[i] == 2:
            out[i] = SHELTERS[shelter[i]]
    return out, kind == 0


def _people(w: _World, rng: np.random.Generator, g0: int, n: int) -> _People:
    gid = np.arange(g0, g0 + n, dtype=np.int64)
    cohort = w.cohort[g0:g0 + n].copy()
    sex = _pick(rng, SEX_P, n)
    race = _pick(rng, RACE_P, n)
    hispanic = rng.random(n) < HISPANIC_SHARE
    dob = _draw_dob(rng, n)
    first, middle, last, compound = _names(rng, sex, hispanic)
    address, housed = _addresses(rng, n)
    phone = _obj(f"{AREA_CODES[a]}-{x}-{y:04d}" for a, x, y in zip(
        rng.integers(0, len(AREA_CODES), n), rng.integers(200, 1000, n), rng.integers(0, 10000, n)))
    phone[rng.random(n) >= PHONE_SHARE] = None

    # Households: a relative shares the surname, address (and often the phone), never the given name.
    pairs = int(round(n * HOUSEHOLD_SHARE / 2))
    candidates = np.flatnonzero(housed)
    pairs = min(pairs, len(candidates) // 2)
    chosen = rng.permutation(candidates)[:2 * pairs]
    heads, relatives = chosen[:pairs], chosen[pairs:]
    relative = np.full(n, -1, dtype=np.int64)
    relative[heads], relative[relatives] = relatives, heads
    twin = rng.random(pairs)
    for h, r, t in zip(heads, relatives, twin):
        last[r], compound[r], address[r] = last[h], compound[h], address[h]
        race[r], hispanic[r] = race[h], hispanic[h]
        if t < 0.5:
            phone[r] = phone[h]
        if t < TWIN_SHARE:
            dob[r] = dob[h]
        pool = MALE_NAMES if sex[r] == "M" else FEMALE_NAMES
        k = int(t * 1e6)
        while first[r] == first[h]:
            first[r] = pool[k % len(pool)]
            k += 7
    ethnicity = np.where(hispanic, "HISPANIC", "NON_HISPANIC").astype(object)

    home = np.where(cohort == LEAD, rng.choice(w.lead_precincts, n),
                    np.where(cohort == COMPARISON, rng.choice(w.comparison_precincts, n),
                             rng.choice(len(w.precincts), n, p=w.precinct_p)))
    rate = rng.gamma(ARREST_SPREAD, MEAN_ARRESTS / ARREST_SPREAD, n)

    index = np.where(cohort != NONE, _draw_index(rng, w, cohort), NULL_DAY)
    in_cohort = cohort != NONE
    age = np.zeros(n, dtype=np.int64)
    age[in_cohort] = _age(dob[in_cohort], index[in_cohort])
    prior = np.zeros(n, dtype=np.int64)
    for c in (LEAD, COMPARISON):
        m = cohort == c
        prior[m] = rng.choice(5, size=int(m.sum()), p=PRIOR_ARRESTS_P[c])
    p = 1 / (1 + np.exp(-_logit(w.intercept, prior, age, sex == "M", cohort == LEAD)))
    any_after = in_cohort & (rng.random(n) < p)
    after = np.where(any_after, 1 + rng.poisson(EXTRA_REARRESTS_MEAN, n), 0)

    nick = _draw_nicknames(rng, first)
    return _People(gid=gid, cohort=cohort, sex=sex, race=race, ethnicity=ethnicity, dob=dob,
                   first=first, nick=nick, relative=relative, middle=middle, last=last,
                   compound=compound,
                   ssn=_ssns(w, gid), address=address, phone=phone, home=home, rate=rate,
                   index=index, age_at_index=age, prior=prior, after=after)


# --- events ---------------------------------------------------------------------------------------

def _arrests(w: _World, rng: np.random.Generator, P: _People) -> dict:
    """Arrests (one entry each, sorted by date) and their charges."""
    n, total = P.n, w.d1 - w.d0 + 1
    cohort = P.cohort != NONE
    index = np.where(cohort, P.index, 0)
    # Background arrests avoid the year either side of a cohort person's index date, where the
    # prior and outcome arrests below are placed; so their counts are exactly as drawn.
    band_start = np.where(cohort, index - FOLLOW_UP_DAYS, w.d1 + 1)
    band = np.where(cohort, 2 * FOLLOW_UP_DAYS + 1, 0)
    before_band = band_start - w.d0
    outside = total - band
    count = rng.poisson(P.rate * outside / total)
    who_bg = np.repeat(np.arange(n), count)
    u = np.floor(rng.random(len(who_bg)) * outside[who_bg]).astype(np.int64)
    after_band = band_start[who_bg] + band[who_bg] + (u - before_band[who_bg])
    day_bg = np.where(u < before_band[who_bg], w.d0 + u, after_band)

    who_prior = np.repeat(np.arange(n), P.prior)
    day_prior = P.index[who_prior] - rng.integers(1, FOLLOW_UP_DAYS + 1, len(who_prior))
    who_after = np.repeat(np.arange(n), P.after)
    day_after = P.index[who_after] + rng.integers(1, FOLLOW_UP_DAYS + 1, len(who_after))
    who_index = np.flatnonzero(P.cohort == COMPARISON)

    who = np.concatenate([who_bg, who_prior, who_after, who_index])
    day = np.concatenate([day_bg, day_prior, day_after, P.index[who_index]])
    is_index = np.zeros(len(who), dtype=bool)
    is_index[len(who) - len(who_index):] = True
    order = np.lexsort((who, day))
    who, day, is_index = who[order], day[order], is_index[order]
    na = len(who)

    precinct = np.where(is_index | (rng.random(na) < HOME_PRECINCT_SHARE), P.home[who],
                        rng.choice(len(w.precincts), na, p=w.precinct_p))
    n_charges = rng.choice(len(CHARGES_P), size=na, p=CHARGES_P) + 1
    arrest_of = np.repeat(np.arange(na), n_charges)
    seq = _seq(n_charges)
    code = rng.choice(len(w.offenses.codes), size=len(arrest_of), p=w.code_p)
    lead_charge = is_index[arrest_of] & (seq == 1)
    code[lead_charge] = rng.choice(w.eligible_codes, size=int(lead_charge.sum()), p=w.eligible_p)
    # The cohort rule: only comparison people, from their index date on, have LEAD-eligible
    # arrests in comparison precincts inside the program window.
    restricted = (w.is_comparison_precinct[precinct] & (day >= w.p0) & (day <= w.p1)
                  & ~((P.cohort[who] == COMPARISON) & (day >= P.index[who])))
    fix = restricted[arrest_of] & w.offenses.eligible[code]
    code[fix] = rng.choice(w.other_codes, size=int(fix.sum()), p=w.other_p)

    return {"who": who, "day": day, "precinct": precinct, "n_charges": n_charges,
            "first_charge": np.cumsum(n_charges) - n_charges, "code": code, "seq": seq,
            "id": w.record_ids("arrest", na)}


def _bookings(w: _World, rng: np.random.Generator, P: _People, A: dict) -> dict:
    """Jail bookings: most arrests, same day; plus warrant and other-agency bookings."""
    na = len(A["who"])
    booked = np.flatnonzero(rng.random(na) < BOOKED_SHARE)
    n_extra = int(rng.binomial(len(booked), EXTRA_BOOKINGS))
    arrests_per_person = np.bincount(A["who"], minlength=P.n) + 0.5
    who_extra = rng.choice(P.n, size=n_extra, p=arrests_per_person / arrests_per_person.sum())
    day_extra = rng.integers(w.d0, w.d1 + 1, n_extra)
    day_extra = np.where(day_extra == P.index[who_extra], day_extra + 1, day_extra)
    n_extra_charges = rng.choice(2, size=n_extra, p=(0.7, 0.3)) + 1
    extra_code = rng.choice(len(w.offenses.codes), size=int(n_extra_charges.sum()), p=w.warrant_p)

    who = np.concatenate([A["who"][booked], who_extra])
    day = np.concatenate([A["day"][booked], day_extra])
    arrest = np.concatenate([booked, np.full(n_extra, -1)])
    n_charges = np.concatenate([A["n_charges"][booked], n_extra_charges])
    code_pool = np.concatenate([A["code"], extra_code])
    code_start = np.concatenate([A["first_charge"][booked],
                                 len(A["code"]) + np.cumsum(n_extra_charges) - n_extra_charges])
    nb = len(who)
    booked_at = day * 1440 + rng.integers(0, 1440, nb)

    r = rng.random(nb)
    stay = np.where(r < 0.45, 0, np.where(r < 0.85, np.minimum(rng.geometric(0.15, nb), 30),
                                           np.minimum(31 + rng.exponential(25, nb).astype(np.int64), 120)))
    released_at = booked_at + stay * 1440 + rng.integers(60, 601, nb)
    late = released_at // 1440 > w.d1
    recent = day > w.d1 - 30
    # Only people booked in the last 30 days may still be in custody when the data ends.
    released_at = np.where(late & ~recent, w.d1 * 1440 + rng.integers(8 * 60, 18 * 60, nb), released_at)
    released_at = np.where(late & recent, NULL_DAY, released_at)

    order = np.lexsort((who, booked_at))
    who, day, arrest, n_charges, code_start, booked_at, released_at = (
        x[order] for x in (who, day, arrest, n_charges, code_start, booked_at, released_at))
    return {"who": who, "day": day, "booked_at": booked_at, "released_at": released_at,
            "arrest": arrest, "n_charges": n_charges, "code": code_pool[_expand(code_start, n_charges)],
            "seq": _seq(n_charges), "id": w.record_ids("booking", nb)}


def _cases(w: _World, rng: np.random.Generator, P: _People, A: dict) -> dict:
    """Prosecutor referrals: most arrests a few days later, plus some cases without an arrest."""
    na = len(A["who"])
    referred = np.flatnonzero(rng.random(na) < PROSECUTOR_SHARE)
    ref_day = A["day"][referred] + rng.integers(1, 11, len(referred))
    keep = ref_day <= w.d1
    referred, ref_day = referred[keep], ref_day[keep]
    n_extra = int(rng.binomial(len(referred), EXTRA_CASES))
    arrests_per_person = np.bincount(A["who"], minlength=P.n) + 0.5
    who_extra = rng.choice(P.n, size=n_extra, p=arrests_per_person / arrests_per_person.sum())
    n_extra_charges = rng.choice(2, size=n_extra, p=(0.8, 0.2)) + 1
    extra_code = rng.choice(len(w.offenses.codes), size=int(n_extra_charges.sum()), p=w.code_p)

    who = np.concatenate([A["who"][referred], who_extra])
    day = np.concatenate([ref_day, rng.integers(w.d0, w.d1 + 1, n_extra)])
    arrest = np.concatenate([referred, np.full(n_extra, -1)])
    n_charges = np.concatenate([A["n_charges"][referred], n_extra_charges])
    code_start = np.concatenate([A["first_charge"][referred],
                                 len(A["code"]) + np.cumsum(n_extra_charges) - n_extra_charges])
    order = np.lexsort((who, day))
    who, day, arrest, n_charges, code_start = (x[order] for x in (who, day, arrest, n_charges, code_start))
    nc = len(who)
    case_of = np.repeat(np.arange(nc), n_charges)
    code = np.concatenate([A["code"], extra_code])[_expand(code_start, n_charges)]

    lead_after = (P.cohort[who] == LEAD) & (day > P.index[who])
    p = np.where(lead_after[case_of, None], DECISION_P_LEAD, DECISION_P)
    decision = np.minimum((rng.random(len(case_of))[:, None] > np.cumsum(p, axis=1)).sum(axis=1),
                          len(DECISIONS) - 1)
    decided_on = (day + rng.integers(0, 46, nc))[case_of]
    decision = np.where(decided_on > w.d1, DECISIONS.index("pending"), decision)
    pending = decision == DECISIONS.index("pending")
    filed = decision == DECISIONS.index("filed")
    disposition = rng.choice(len(DISPOSITIONS), size=len(case_of), p=DISPOSITION_P)
    disposed_on = decided_on + rng.integers(14, 401, len(case_of))
    disposition = np.where(disposed_on > w.d1, DISPOSITIONS.index("pending"), disposition)
    disposition_pending = disposition == DISPOSITIONS.index("pending")
    return {
        "who": who, "day": day, "arrest": arrest, "n_charges": n_charges, "code": code,
        "seq": _seq(n_charges), "id": w.record_ids("case", nc),
        "decision": _obj(DECISIONS)[decision],
        "decision_date": np.where(pending, NULL_DAY, decided_on),
        "disposition": np.where(filed, _obj(DISPOSITIONS)[disposition], None),
        "disposition_date": np.where(filed & ~disposition_pending, disposed_on, NULL_DAY),
    }


def _referrals(w: _World, rng: np.random.Generator, P: _People) -> dict:
    """LEAD referrals: the first on the index date, sometimes a second later in the window."""
    lead = np.flatnonzero(P.cohort == LEAD)
    second = lead[rng.random(len(lead)) < SECOND_REFERRAL_SHARE]
    second_day = P.index[second] + rng.integers(14, 301, len(second))
    second, second_day = second[second_day <= w.p1], second_day[second_day <= w.p1]
    who = np.concatenate([lead, second])
    day = np.concatenate([P.index[lead], second_day])
    order = np.lexsort((who, day))
    who, day = who[order], day[order]
    nr = len(who)
    kind = _pick(rng, REFERRAL_TYPES, nr)
    category = np.empty(nr, dtype=object)
    for t, p in REFERRAL_CATEGORY.items():
        m = kind == t
        category[m] = _pick(rng, p, int(m.sum()))
    precinct = np.where(rng.random(nr) < 0.85, P.home[who], rng.choice(w.lead_precincts, nr))
    return {"who": who, "day": day, "type": kind, "category": category, "precinct": precinct,
            "officer": w.officers[rng.integers(0, len(w.officers), nr)], "id": w.record_ids("referral", nr)}


def _treatment(w: _World, rng: np.random.Generator, P: _People) -> dict:
    """Every LEAD participant becomes a case-management client; a few others come on their own."""
    lead = P.cohort == LEAD
    who = np.flatnonzero(lead | ((P.cohort == NONE) & (rng.random(P.n) < OTHER_CLIENTS)))
    n = len(who)
    is_lead = lead[who]
    wait = np.clip(np.round(rng.lognormal(math.log(14), 0.6, n)), 3, 60).astype(np.int64)
    intake = np.where(is_lead, P.index[who] + wait, rng.integers(w.d0, w.d1 - 30, n))
    source = np.where(is_lead, "lead", _pick(rng, CLIENT_SOURCES, n)).astype(object)
    exit_day = intake + 30 + rng.exponential(420, n).astype(np.int64)
    exited = exit_day <= w.d1
    exit_reason = np.where(exited, _pick(rng, EXIT_REASONS, n), None)
    order = np.lexsort((who, intake))
    who, intake, source, exit_day, exited, exit_reason = (
        x[order] for x in (who, intake, source, exit_day, exited, exit_reason))

    consent = _pick(rng, CONSENT, n)
    consent_day = intake.copy()
    revoked = consent == "revoked"
    consent_day[revoked] = intake[revoked] + rng.integers(30, 400, int(revoked.sum()))
    expired = consent == "expired"
    consent_day[expired] = intake[expired] + 365
    too_late = (revoked | expired) & (consent_day > w.d1)   # not happened yet: still active
    consent[too_late], consent_day[too_late] = "active", intake[too_late]

    open_until = np.where(exited, exit_day, w.d1)
    engagement = rng.gamma(2.0, 0.5, n)
    n_contacts = rng.poisson(CONTACTS_PER_DAY * engagement * (open_until - intake + 1))
    episode_of = np.repeat(np.arange(n), n_contacts)
    span = (open_until - intake + 1)[episode_of]
    contact_day = intake[episode_of] + np.floor(rng.random(len(episode_of)) * span).astype(np.int64)
    corder = np.lexsort((episode_of, contact_day))
    episode_of, contact_day = episode_of[corder], contact_day[corder]
    return {
        "who": who, "intake": intake, "source": source, "exit": np.where(exited, exit_day, NULL_DAY),
        "exit_reason": exit_reason, "consent": consent, "consent_day": consent_day,
        "episode_id": w.record_ids("episode", n),
        "contact_episode": episode_of, "contact_day": contact_day,
        "service": _pick(rng, SERVICE_TYPES, len(episode_of)),
        "contact_id": w.record_ids("contact", len(episode_of)),
    }


# --- how each agency writes a person ----------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _typo(s: str, op: int, where: float, letter: int) -> str:
    """One keying error: substitution, transposition, deletion or insertion."""
    if len(s) < 3:
        return s
    i = int(where * len(s))
    c = _LETTERS[letter]
    if s[min(i, len(s) - 1)].isupper():
        c = c.upper()
    if op == 0:
        return s[:i] + (c if c.lower() != s[i].lower() else _LETTERS[(letter + 1) % 26]) + s[i + 1:]
    if op == 1:
        i = min(i, len(s) - 2)
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if op == 2:
        return s[:i] + s[i + 1:]
    return s[:i] + c + s[i:]


def _reformat(s: str, kind: int) -> str:
    """Meaningless spelling differences: punctuation dropped, all caps, lower case, stray spaces."""
    if kind == 0:
        return re.sub(r"['\-. ]", "", s) or s
    if kind == 1:
        return s.upper()
    if kind == 2:
        return s.lower()
    return s.replace(" ", "  ") if " " in s else s + " "


def _spell(rng: np.random.Generator, P: _People, who: np.ndarray) -> dict[str, np.ndarray]:
    """How one record of each person in ``who`` was typed, before the agency's own conventions."""
    n = len(who)
    first, last, dob = P.first[who].copy(), P.last[who].copy(), P.dob[who].copy()
    u = rng.random((8, n))
    r = VARIANT_RATES

    m = (u[0] < r["nickname"]) & P.nick[who].astype(bool)       # None is False
    first[m] = P.nick[who[m]]
    m = (u[1] < r["middle_initial"]) & P.middle[who].astype(bool)
    first[m] = first[m] + " " + P.middle[who[m]]
    for i in np.flatnonzero((u[2] < r["compound"]) & P.compound[who]):
        a, b = P.last[who[i]].split("-", 1)
        last[i] = (f"{a} {b}", a, b)[int(u[3][i] * 3)]

    typo = np.flatnonzero(u[4] < r["typo"])
    ops, where, letters = rng.integers(0, 4, len(typo)), rng.random(len(typo)), rng.integers(0, 26, len(typo))
    on_first = rng.random(len(typo)) < 0.5
    for i, op, x, c, f in zip(typo, ops, where, letters, on_first):
        if f:
            first[i] = _typo(first[i], op, x, c)
        else:
            last[i] = _typo(last[i], op, x, c)

    fmt = np.flatnonzero(u[5] < r["format"])
    kinds, on_first = rng.integers(0, 4, len(fmt)), rng.random(len(fmt)) < 0.3
    for i, k, f in zip(fmt, kinds, on_first):
        if f:
            first[i] = _reformat(first[i], k)
        else:
            last[i] = _reformat(last[i], k)

    m = u[6] < r["swap_names"]
    first[m], last[m] = last[m], first[m].copy()

    relative = P.relative[who]
    m = (rng.random(n) < r["household_dob"]) & (relative >= 0)
    dob[m] = P.dob[relative[m]]

    swap = np.flatnonzero(u[7] < r["swap_dob"])
    if len(swap):
        y, mo, d = _ymd(dob[swap])
        ok = (d <= 12) & (d != mo)
        dob[swap[ok]] = [_day(date(a, b, c)) for a, b, c in zip(y[ok].tolist(), d[ok].tolist(),
                                                                mo[ok].tolist())]

    # Placeholders last: they replace whatever was typed.
    v = rng.random((4, n))
    m = v[0] < r["initial_only"]
    first[m] = [f[0] for f in first[m]]
    m = np.flatnonzero(v[1] < r["placeholder_first"])
    # Drawn from PLACEHOLDER_FIRST plus one more choice, 'Baby Boy/Girl' by sex ('Unknown' for X).
    k = (v[2][m] * (len(PLACEHOLDER_FIRST) + 1)).astype(np.int64)
    pool = _obj(PLACEHOLDER_FIRST + ("",))[k]
    baby = k == len(PLACEHOLDER_FIRST)
    pool[baby] = [PLACEHOLDER_FIRST_BY_SEX.get(x, PLACEHOLDER_FIRST[0]) for x in P.sex[who[m[baby]]]]
    first[m] = pool
    m = v[3] < r["placeholder_last"]
    last[m] = _obj(PLACEHOLDER_LAST)[rng.integers(0, len(PLACEHOLDER_LAST), int(m.sum()))]

    ssn = P.ssn[who].copy()
    ssn[rng.random(n) < r["ssn_missing"]] = None
    return {"first_name": first, "last_name": last, "dob": dob, "ssn": ssn,
            "address": P.address[who].copy(), "phone": P.phone[who].copy(),
            "dob_missing": rng.random(n) < r["dob_missing"]}


def _styled(agency: str, spelled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply an agency's fixed conventions to spelled records."""
    style = AGENCY_STYLE[agency]
    out = dict(spelled)

    def name(upper: bool):
        def fn(s: str) -> str:
            if style["ascii"]:
                s = _ascii(s)
            if upper:
                s = s.upper().replace("'", "")   # e.g. O'BRIEN keyed as OBRIEN
            return s
        return fn
    out["first_name"] = _map(spelled["first_name"], name(style["upper_first"]))
    out["last_name"] = _map(spelled["last_name"], name(style["upper_last"]))
    if style["ssn_dashes"]:
        out["ssn"] = _map(spelled["ssn"], lambda s: f"{s[:3]}-{s[3:5]}-{s[5:]}")
    address = spelled["address"].copy()
    address[~address.astype(bool)] = style["homeless"]
    out["address"] = _map(address, str.upper) if style["upper_address"] else address
    return out


def _identities(w: _World, rng: np.random.Generator, P: _People, agency: str, who: np.ndarray,
                day: np.ndarray, duplicate: np.ndarray) -> dict[str, np.ndarray]:
    """Per record: the agency's person number and how it wrote the person's identifiers.

    Each person the agency has seen gets one number (two for people in ``duplicate``, registered
    twice) and a master record; most records copy the master spelling, some were retyped.
    """
    people = np.unique(who)
    twice = people[duplicate[people]]
    registered = np.concatenate([people, twice])
    ids = w.person_ids_for(agency, len(registered))
    reg = np.searchsorted(people, who)
    if len(twice):
        rows = np.flatnonzero(duplicate[who])
        rows = rows[np.lexsort((day[rows], who[rows]))]
        use_second = rng.random(len(rows)) < 0.5
        starts = np.flatnonzero(np.r_[True, who[rows][1:] != who[rows][:-1]])
        ends = np.r_[starts[1:], len(rows)] - 1
        use_second[starts] = False                      # the first record made the first number
        none_second = ~np.logical_or.reduceat(use_second, starts)
        use_second[ends[none_second]] = True            # and a later one made the second
        reg[rows[use_second]] = len(people) + np.searchsorted(twice, who[rows[use_second]])

    master = _spell(rng, P, registered)
    record = {k: v[reg] for k, v in master.items()}
    retyped = np.flatnonzero(rng.random(len(who)) < RETYPED_SHARE)
    fresh = _spell(rng, P, who[retyped])
    for k in record:
        record[k][retyped] = fresh[k]
    out = _styled(agency, record)
    out["agency_person_id"] = ids[reg]
    return out


def _recorded(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """A demographic as an agency recorded it: sometimes UNKNOWN."""
    out = values.copy()
    out[rng.random(len(out)) < rate] = "UNKNOWN"
    return out


def _duplicates(rng: np.random.Generator, P: _People, who_by_agency: dict[str, np.ndarray]) -> dict:
    """Who is registered twice, and where: one agency among those with 2+ of their records."""
    counts = np.stack([np.bincount(who_by_agency[a], minlength=P.n) for a in DUPLICATE_AGENCIES], axis=1)
    possible = counts >= 2
    twice = possible.any(axis=1) & (rng.random(P.n) < DUPLICATE_ID_SHARE)
    choice = np.argmax(np.where(possible, rng.random(possible.shape), -1), axis=1)
    return {a: twice & (choice == k) for k, a in enumerate(DUPLICATE_AGENCIES)}


# === assembling and writing a block ===============================================================

def _ids_or_none(ids: np.ndarray, position: np.ndarray) -> np.ndarray:
    """ids[position], and None where position is -1 (a booking or case with no arrest)."""
    out = np.full(len(position), None, dtype=object)
    out[position >= 0] = ids[position[position >= 0]]
    return out


def _block(w: _World, b: int) -> tuple[dict, _People, dict]:
    """Generate one block of people; returns rows per contract, the people, and the events."""
    rng = np.random.default_rng([w.seed, 1, b])
    g0 = b * BLOCK_PEOPLE
    P = _people(w, rng, g0, min(BLOCK_PEOPLE, w.people - g0))
    A = _arrests(w, rng, P)
    J = _bookings(w, rng, P, A)
    K = _cases(w, rng, P, A)
    R = _referrals(w, rng, P)
    T = _treatment(w, rng, P)
    off = w.offenses

    police_who = np.concatenate([R["who"], A["who"]])
    dup = _duplicates(rng, P, {"police": police_who, "jail": J["who"], "prosecutor": K["who"]})
    police = _identities(w, rng, P, "police", police_who, np.concatenate([R["day"], A["day"]]),
                         dup["police"])
    jail = _identities(w, rng, P, "jail", J["who"], J["day"], dup["jail"])
    prosecutor = _identities(w, rng, P, "prosecutor", K["who"], K["day"], dup["prosecutor"])
    treatment = _identities(w, rng, P, "treatment", T["who"], T["intake"], np.zeros(P.n, dtype=bool))
    nr = len(R["who"])
    referral_ident = {k: v[:nr] for k, v in police.items()}
    arrest_ident = {k: v[nr:] for k, v in police.items()}

    def per_charge(ident: dict, n_charges: np.ndarray) -> dict:
        return {k: np.repeat(v, n_charges) for k, v in ident.items()}

    def demographics(who: np.ndarray) -> dict:
        return {"sex": P.sex[who], "race": _recorded(rng, P.race[who], VARIANT_RATES["race_unknown"]),
                "ethnicity": _recorded(rng, P.ethnicity[who], VARIANT_RATES["ethnicity_unknown"])}

    rows = {}
    rows["police_referrals"] = (referral_ident, {
        "referral_id": R["id"], **demographics(R["who"]), "referral_date": R["day"],
        "referral_type": R["type"], "offense_category": R["category"],
        "precinct": w.precincts[R["precinct"]], "officer_id": R["officer"]}, R["who"])

    arrest_of = np.repeat(np.arange(len(A["who"])), A["n_charges"])
    arrest_demo = {k: v[arrest_of] for k, v in demographics(A["who"]).items()}
    rows["police_arrests"] = (per_charge(arrest_ident, A["n_charges"]), {
        "arrest_id": A["id"][arrest_of], "charge_seq": A["seq"], **arrest_demo,
        "arrest_date": A["day"][arrest_of], "precinct": w.precincts[A["precinct"]][arrest_of],
        "offense_code": off.codes[A["code"]], "severity": off.severity[A["code"]]}, A["who"][arrest_of])

    booking_of = np.repeat(np.arange(len(J["who"])), J["n_charges"])
    arrest_id = _ids_or_none(A["id"], J["arrest"])
    booking_demo = {k: v[booking_of] for k, v in demographics(J["who"]).items()}
    rows["jail_bookings"] = (per_charge(jail, J["n_charges"]), {
        "booking_id": J["id"][booking_of], "charge_seq": J["seq"], **booking_demo,
        "booking_ts": J["booked_at"][booking_of], "release_ts": J["released_at"][booking_of],
        "arrest_id": arrest_id[booking_of], "offense_code": off.codes[J["code"]],
        "severity": off.severity[J["code"]]}, J["who"][booking_of])

    case_of = np.repeat(np.arange(len(K["who"])), K["n_charges"])
    case_arrest = _ids_or_none(A["id"], K["arrest"])
    rows["prosecutor_cases"] = (per_charge(prosecutor, K["n_charges"]), {
        "case_id": K["id"][case_of], "charge_seq": K["seq"], "arrest_id": case_arrest[case_of],
        "referral_date": K["day"][case_of], "offense_code": off.codes[K["code"]],
        "severity": off.severity[K["code"]], "decision": K["decision"],
        "decision_date": K["decision_date"], "disposition": K["disposition"],
        "disposition_date": K["disposition_date"]}, K["who"][case_of])

    rows["treatment_clients"] = (treatment, {
        "sex": P.sex[T["who"]], "consent_status": T["consent"], "consent_date": T["consent_day"]}, T["who"])
    rows["treatment_episodes"] = ({"agency_person_id": treatment["agency_person_id"]}, {
        "episode_id": T["episode_id"], "intake_date": T["intake"], "referral_source": T["source"],
        "exit_date": T["exit"], "exit_reason": T["exit_reason"]}, T["who"])
    ce = T["contact_episode"]
    rows["treatment_contacts"] = ({"agency_person_id": treatment["agency_person_id"][ce]}, {
        "contact_id": T["contact_id"], "contact_date": T["contact_day"], "service_type": T["service"]},
        T["who"][ce])
    for name, (ident, plain, who) in rows.items():
        rows[name] = (_blank_dobs(w.contracts[name], ident), plain, who)
    return rows, P, {"arrests": A, "bookings": J, "referrals": R}


def _blank_dobs(contract: Contract, ident: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Birth dates left blank, in the extracts whose contract lets them be (others require one)."""
    column = contract.role("dob")
    if column is None or not column.nullable or "dob_missing" not in ident:
        return ident
    return {**ident, "dob": np.where(ident["dob_missing"], NULL_DAY, ident["dob"])}


# === ground truth =================================================================================

class _Truth:
    """Collects what the answers need from each block: cohort people and their events only."""

    def __init__(self, w: _World):
        self.w = w
        self.persons: list[dict] = []
        self.arrests: list[tuple[np.ndarray, np.ndarray]] = []      # (gid, day)
        self.bookings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (gid, day, days in jail)
        self.referral_months: dict[tuple[str, str], int] = {}

    def add(self, P: _People, events: dict) -> None:
        w = self.w
        in_cohort = P.cohort != NONE
        for i in np.flatnonzero(in_cohort):
            self.persons.append({
                "gid": int(P.gid[i]), "cohort": COHORT_NAMES[int(P.cohort[i])],
                "index_date": _date(P.index[i]).isoformat(), "sex": P.sex[i], "race": P.race[i],
                "ethnicity": P.ethnicity[i], "age_at_index": int(P.age_at_index[i]),
                "prior_arrests_365": int(P.prior[i])})
        A, J, R = events["arrests"], events["bookings"], events["referrals"]
        m = in_cohort[A["who"]]
        self.arrests.append((P.gid[A["who"][m]], A["day"][m]))
        m = in_cohort[J["who"]]
        released = np.where(J["released_at"] == NULL_DAY, w.d1, J["released_at"] // 1440)
        self.bookings.append((P.gid[J["who"][m]], J["day"][m], (released - J["day"] + 1)[m]))
        y, mo, _ = _ymd(R["day"])
        for year, month, kind in zip(y.tolist(), mo.tolist(), R["type"].tolist()):
            key = (f"{year:04d}-{month:02d}", kind)
            self.referral_months[key] = self.referral_months.get(key, 0) + 1

    def outcomes(self) -> dict:
        """True aggregates per cohort and window W, as marts.outcomes defines them:
        before = [index-W, index), after = (index, index+W], bookings by booking date, a booking's
        jail days = (release date, or the data end, - booking date) + 1."""
        index = {p["gid"]: _day(date.fromisoformat(p["index_date"])) for p in self.persons}
        cohort = {p["gid"]: p["cohort"] for p in self.persons}
        a_gid = np.concatenate([g for g, _ in self.arrests])
        a_day = np.concatenate([d for _, d in self.arrests])
        b_gid = np.concatenate([g for g, _, _ in self.bookings])
        b_day = np.concatenate([d for _, d, _ in self.bookings])
        b_len = np.concatenate([x for _, _, x in self.bookings])
        a_index = np.array([index[g] for g in a_gid.tolist()], dtype=np.int64)
        b_index = np.array([index[g] for g in b_gid.tolist()], dtype=np.int64)
        a_cohort = _obj(cohort[g] for g in a_gid.tolist())
        b_cohort = _obj(cohort[g] for g in b_gid.tolist())
        out = {}
        for name in ("lead", "comparison"):
            out[name] = {}
            n_people = sum(p["cohort"] == name for p in self.persons)
            for W in self.w.windows:
                ab = (a_cohort == name) & (a_day >= a_index - W) & (a_day < a_index)
                aa = (a_cohort == name) & (a_day > a_index) & (a_day <= a_index + W)
                bb = (b_cohort == name) & (b_day >= b_index - W) & (b_day < b_index)
                ba = (b_cohort == name) & (b_day > b_index) & (b_day <= b_index + W)
                out[name][str(W)] = {
                    "n_people": n_people,
                    "arrests_before": int(ab.sum()), "arrests_after": int(aa.sum()),
                    "bookings_before": int(bb.sum()), "bookings_after": int(ba.sum()),
                    "jail_days_before": int(b_len[bb].sum()), "jail_days_after": int(b_len[ba].sum()),
                    "any_rearrest_after": len(set(a_gid[aa].tolist())),
                }
        return out

    def referrals(self) -> dict:
        w = self.w
        months = []
        y, m = _date(w.p0).year, _date(w.p0).month
        while (y, m) <= (_date(w.p1).year, _date(w.p1).month):
            months.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        months += sorted({k[0] for k in self.referral_months} - set(months))
        by_month = {mo: {t: self.referral_months.get((mo, t), 0) for t in REFERRAL_TYPES} for mo in months}
        return {"total": sum(self.referral_months.values()), "by_month": by_month}


def _odds_ratio(outcomes: dict, window: str) -> float | None:
    def odds(c):
        k, n = outcomes[c][window]["any_rearrest_after"], outcomes[c][window]["n_people"]
        return k / (n - k) if 0 < k < n else None
    lead, comparison = odds("lead"), odds("comparison")
    return round(lead / comparison, 4) if lead and comparison else None


# === the public entry point ========================================================================

def generate(inbox_dir: Path, answers_dir: Path, people: int = 3000, seed: int = 7,
             lead: int = 203, comparison: int = 115, progress: bool = False) -> dict:
    """Write one extract per contract into ``inbox_dir/<agency>/`` and the truth into ``answers_dir``.

    Files are named by the contract's file pattern with the data end date as the stamp and appear
    only when complete (written as ``.part``, synced, renamed). Answers are finalized first, so the
    truth exists before any extract does.

    Returns an identifier-free summary: seed, people, cohort sizes, and rows per file.
    """
    started = time.monotonic()
    w = _World(people, seed, lead, comparison)
    inbox_dir, answers_dir = Path(inbox_dir), Path(answers_dir)
    stamp = DATA_END.strftime("%Y%m%d")
    writers: dict[str, _ExtractWriter] = {}
    opened: list[_AtomicCsv] = []
    truth = _Truth(w)
    bar = tqdm(total=people, unit="people", desc="synthetic", disable=not progress)
    rows_bar = tqdm(unit="rows", desc="extract rows", disable=not progress)
    try:
        records = _AtomicCsv(answers_dir / "records.csv", ["contract", "row_number", "true_person_id"])
        opened.append(records)
        for name, contract in w.contracts.items():
            writers[name] = _ExtractWriter(inbox_dir, contract, stamp)
            opened.append(writers[name])
        for b in range(-(-people // BLOCK_PEOPLE)):
            rows, P, events = _block(w, b)
            tids = _obj(f"T{g + 1:0{w.tid_width}d}" for g in P.gid.tolist())
            written = 0
            for name, writer in writers.items():
                ident, plain, who = rows[name]
                start = writer.rows
                n = writer.write(ident, plain)
                records.write_columns([[name] * n, list(range(start + 1, start + n + 1)), tids[who].tolist()])
                written += n
            truth.add(P, events)
            bar.update(P.n)
            rows_bar.update(written)

        outcomes = truth.outcomes()
        _write_answers(w, answers_dir, truth, outcomes, {n: wr.rows for n, wr in writers.items()})
        records.commit()
        for writer in writers.values():
            writer.commit()
    except BaseException:
        for writer in opened:
            writer.abort()
        raise
    finally:
        bar.close()
        rows_bar.close()
    return {
        "seed": seed, "people": people, "lead": lead, "comparison": comparison,
        "files": {n: wr.rows for n, wr in writers.items()},
        "paths": {n: str(wr.path) for n, wr in writers.items()},
        "rows_total": sum(wr.rows for wr in writers.values()),
        "answers_dir": str(answers_dir),
        "seconds": round(time.monotonic() - started, 2),
    }


def _write_answers(w: _World, answers_dir: Path, truth: _Truth, outcomes: dict, files: dict) -> None:
    persons = _AtomicCsv(answers_dir / "persons.csv",
                         ["true_person_id", "cohort", "index_date", "sex", "race", "ethnicity",
                          "age_at_index", "prior_arrests_365"])
    people = sorted(truth.persons, key=lambda p: p["gid"])
    persons.write_columns([
        [f"T{p['gid'] + 1:0{w.tid_width}d}" for p in people], *[[p[k] for p in people] for k in (
            "cohort", "index_date", "sex", "race", "ethnicity", "age_at_index", "prior_arrests_365")]])
    persons.commit()

    doc = {
        "seed": w.seed,
        "people": w.people,
        "data_start": DATA_START.isoformat(),
        "data_end": DATA_END.isoformat(),
        "program_start": _date(w.p0).isoformat(),
        "program_end": _date(w.p1).isoformat(),
        "windows_days": list(w.windows),
        "planted": {
            "odds_ratio_lead_any_rearrest_365": ODDS_RATIO_LEAD,
            "model": "logit P(any arrest in (index, index+365]) = intercept + any_prior_365*[prior arrests "
                     "in the 365 days before index > 0] + age_per_decade*(age_at_index-35)/10 "
                     "+ male*[sex=M] + lead*[cohort=lead]",
            "coefficients": {"intercept": round(w.intercept, 6),
                             **{k: round(v, 6) for k, v in MODEL.items()}},
            "target_comparison_rearrest_365": TARGET_COMPARISON_REARREST,
        },
        "counts": {
            "lead": w.lead, "comparison": w.comparison, "none": w.people - w.lead - w.comparison,
            "rows": files,
        },
        "outcomes": outcomes,
        "observed_unadjusted_odds_ratio": {W: _odds_ratio(outcomes, W) for W in map(str, w.windows)},
        "referrals": truth.referrals(),
    }
    out = answers_dir / "truth.json"
    part = out.with_name(out.name + ".part")
    with open(part, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, out)
    _fsync_dir(answers_dir)

"""A re-identification attempt on the analysts' snapshot with the agencies' clear extracts.

The attacker holds every clear extract the synthetic county delivered (names, record numbers,
exact dates and times, officer badges) and the snapshot. The rule, for every snapshot table:

  A *way in* is a combination of one or two snapshot columns whose values, after obvious
  transforms, equal those of one or two columns of one clear extract such that the combination
  is held by exactly one person in the clear extract and by exactly one unit of the snapshot
  table (a person_key where the table has one, else a row): that unit is then re-identified.
  Obvious transforms: text trimmed and upper-cased, numbers as integers, dates and times in ISO
  form, times of day dropped, and clear dates cut to the month and to the year (so a date
  published to the month is compared with the clear date's month).

  Only correct re-identifications count (the test knows each clear person's person_key): a
  unique combination that points at the wrong person discloses nothing.

  The snapshot is safe when no such combination re-identifies more than NEGLIGIBLE (5%) of a
  table's units: stricter than the 9% average risk that the European Medicines Agency accepts
  for clinical reports it publishes. Reference tables without records about anyone (offense
  codes, evaluation settings) are left out. What remains below it comes from plain attributes
  that are rare together in a small county (e.g. offense category and race of a referral: about
  3% in this 600-person county); record-level data keeps that residual risk unless cells are
  suppressed, which the snapshot does not do. With dates to the month instead of the year the
  same attack re-identifies about half of the treatment episodes and prosecutor charges (intake
  and exit month; offense code and decision month), which is why the contracts declare years.

  Beyond pairs the snapshot makes no promise: with ages at the event worked out from the clear
  dates of birth, arrest year, age and race single out about 38% of core.arrest's people in this
  county (measured outside this test). Only suppressing rare combinations would close that.

Separately, no value of any snapshot column may equal a clear record number, officer id or
identifier at all, and person_key is derivable from no clear value by obvious hashing.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import ahocorasick
import duckdb

from leadhub.core.contracts import load_contracts
from transforms.publish import snapshot_path

NEGLIGIBLE = 0.05
REFERENCE_TABLES = {("core", "offense_code"), ("core", "evaluation_settings")}
NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "NUMBER"}


def _norm(value) -> list[str]:
    """Every obvious form of a value (a date gives its day, month and year)."""
    if value is None or value == "":
        return []
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return [value.isoformat()]
    if isinstance(value, bool):
        return [str(value).upper()]
    if isinstance(value, (int, float)):
        return [str(int(value))] if float(value).is_integer() else [repr(float(value))]
    text = str(value).strip().upper()
    return [text] if text else []


def clear_extracts(inbox: Path, person_of=lambda agency, person_id: (agency, person_id)) -> dict[str, dict]:
    """{extract: {"persons": [person per row], "columns": {name: [value or None per row]}}}.

    ``person_of(agency, agency person id)`` names the person of a row (the test passes the
    person_key the hub gave them, so that a link can be checked). Date columns also give
    '<name>#month' and '<name>#year' (the date cut to its month / year).
    """
    out = {}
    for contract in load_contracts().values():
        person_col = contract.role("agency_person_id").name
        rows = []
        for path in sorted((inbox / contract.agency).glob("*")):
            if not contract.matches(path.name):
                continue
            with open(path, newline="", encoding=contract.format.encoding) as f:
                rows += list(csv.DictReader(f, delimiter=contract.format.delimiter,
                                            quotechar=contract.format.quotechar))
        columns: dict[str, list] = {}
        for column in contract.columns:
            values = [r.get(column.name) or None for r in rows]
            if column.is_date:
                days = [_parse(v, column.formats) for v in values]
                columns[column.name] = [d.isoformat() if d else None for d in days]
                columns[column.name + "#month"] = [d.replace(day=1).isoformat() if d else None for d in days]
                columns[column.name + "#year"] = [d.replace(month=1, day=1).isoformat() if d else None
                                                  for d in days]
            else:
                columns[column.name] = [(_norm(v) or [None])[0] for v in values]
        out[contract.name] = {"persons": [person_of(contract.agency, r[person_col]) for r in rows],
                              "columns": columns}
    return out


def _parse(value, formats) -> date | None:
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt).date()
        except (TypeError, ValueError):
            continue
    return None


def snapshot_tables(path: Path) -> dict[str, dict]:
    """{'schema.table': {"units": [unit per row], "columns": {name: [value or None per row]}}}."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                             "WHERE database_name = current_database()").fetchall()
        for schema, table in tables:
            if (schema, table) in REFERENCE_TABLES:
                continue
            cur = con.execute(f'SELECT * FROM {schema}."{table}"')
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            columns = {n: [(_norm(r[i]) or [None])[0] for r in rows] for i, n in enumerate(names)}
            key = names.index("person_key") if "person_key" in names else None
            units = [r[key] for r in rows] if key is not None else list(range(len(rows)))
            numeric = {d[0] for d in cur.description if str(d[1]).split("(")[0] in NUMERIC_TYPES}
            out[f"{schema}.{table}"] = {"units": units, "columns": columns, "numeric": numeric}
    return out


def _linked_units(keys_t, units, keys_e, persons) -> set:
    """Units whose key is held by exactly one unit here and by exactly one person in the clear,
    that person being the unit itself: a correct re-identification."""
    persons_of: dict = defaultdict(set)
    for k, p in zip(keys_e, persons):
        if k is not None:
            persons_of[k].add(p)
    units_of: dict = defaultdict(set)
    for k, u in zip(keys_t, units):
        if k is not None and k in persons_of:
            units_of[k].add(u)
    return {u for k, us in units_of.items() if len(us) == 1 and len(persons_of[k]) == 1
            for u in us if persons_of[k] == {u}}


def ways_in(snapshot: dict, clear: dict) -> list[tuple[float, str, tuple, str, tuple]]:
    """Every (share, table, snapshot columns, extract, clear columns) above NEGLIGIBLE."""
    found = []
    # Each clear column's values, and each snapshot column's value counts, once.
    clear_values = {extract: {x: set(ev) - {None} for x, ev in e["columns"].items()} for extract, e in clear.items()}
    for table, t in snapshot.items():
        units = t["units"]
        total = len({u for u in units if u is not None}) or 1
        counts = {c: Counter(v for v in tv if v is not None) for c, tv in t["columns"].items()}
        for extract, e in clear.items():
            # Pairs that share values at all; below NEGLIGIBLE alone, no pair built on them exceeds it.
            matches = []
            for c, present in counts.items():
                if not present:
                    continue
                for x, values in clear_values[extract].items():
                    shared = sum(n for v, n in present.items() if v in values)
                    if shared / present.total() > NEGLIGIBLE:
                        matches.append((c, x))
            for c, x in matches:
                share = len(_linked_units(t["columns"][c], units, e["columns"][x], e["persons"])) / total
                if share > NEGLIGIBLE:
                    found.append((share, table, (c,), extract, (x,)))
            for (c1, x1), (c2, x2) in itertools.combinations(matches, 2):
                if c1 == c2 or x1.split("#")[0] == x2.split("#")[0]:
                    continue
                keys_t = [None if a is None or b is None else (a, b)
                          for a, b in zip(t["columns"][c1], t["columns"][c2])]
                keys_e = [None if a is None or b is None else (a, b)
                          for a, b in zip(e["columns"][x1], e["columns"][x2])]
                share = len(_linked_units(keys_t, units, keys_e, e["persons"])) / total
                if share > NEGLIGIBLE:
                    found.append((share, table, (c1, c2), extract, (x1, x2)))
    return sorted(found, reverse=True)


# ---------------------------------------------------------------------------------------- the tests

def _truth(hub):
    """person_of for clear_extracts: the person_key the hub gave each agency person id."""
    from leadhub.core.keys import MasterKey
    from transforms.pseudonymize import Pseudonymizer

    pseudonymizer = Pseudonymizer(MasterKey.load(hub.key_file))
    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        link = {(a, t): k for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}

    def person_of(agency: str, person_id: str):
        return link.get((agency, pseudonymizer.person_id_token(agency, person_id)), (agency, person_id))

    return person_of


def test_the_snapshot_cannot_be_joined_back_to_the_clear_extracts(demo_hub, demo_files):
    clear = clear_extracts(demo_files / "inbox", _truth(demo_hub))
    snapshot = snapshot_tables(snapshot_path(demo_hub))
    assert len(snapshot) > 20 and sum(len(e["persons"]) for e in clear.values()) > 10_000
    assert ways_in(snapshot, clear) == []


def test_the_attack_finds_clear_record_numbers_and_exact_dates(demo_hub, demo_files):
    """The attack can fail: a table carrying the agencies' own arrest numbers, or exact arrest
    dates with race, is found at once."""
    clear = clear_extracts(demo_files / "inbox", _truth(demo_hub))
    arrests = clear["police_arrests"]
    leaky = {"core.leaky": {"units": arrests["persons"],
                            "columns": {"arrest_id": arrests["columns"]["arrest_id"],
                                        "arrest_date": arrests["columns"]["arrest_date"],
                                        "race": arrests["columns"]["race"]}}}
    found = {(table, columns) for _, table, columns, _, _ in ways_in(leaky, {"police_arrests": arrests})}
    assert ("core.leaky", ("arrest_id",)) in found
    assert ("core.leaky", ("arrest_date", "race")) in found


def test_no_snapshot_value_is_a_clear_record_number_officer_or_identifier(demo_hub, demo_files):
    contracts = load_contracts()
    clear = clear_extracts(demo_files / "inbox")
    # Record numbers, officer badges, agency person ids, SSNs, phones, addresses. (Names are
    # left out of this exact comparison: surnames such as WHITE or BLACK are also race codes.)
    secret = set()
    for name, extract in clear.items():
        for column in contracts[name].columns:
            if (column.disclosure == "quasi_identifier" and not column.is_date
                    or column.identifier in ("agency_person_id", "ssn", "phone", "address")):
                secret |= set(extract["columns"][column.name]) - {None}
    assert len(secret) > 5_000
    snapshot = snapshot_tables(snapshot_path(demo_hub))
    # Record numbers are declared strings and stay text; a count or a sum in a numeric column
    # that happens to equal a four-digit badge number (1,280 rows) points at no one.
    hits = {(table, c) for table, t in snapshot.items() for c, values in t["columns"].items()
            if c not in t["numeric"] and any(v in secret for v in values if v is not None)}
    assert hits == set()
    # ... nor part of any text in it (file names and reasons in the ops tables): one Aho-Corasick
    # pass per text finds every number anywhere in it (a search per number took 10 CPU-s).
    numbers = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for n in {v for v in secret if len(v) >= 5}:
        numbers.add_word(n, n)
    numbers.make_automaton()
    texts = [v for table, t in snapshot.items() if table.startswith("ops.")
             for values in t["columns"].values() for v in values if isinstance(v, str)]
    assert len(numbers) > 1_000 and texts
    assert not [(t, n) for t in texts for _, n in numbers.iter(t)]


def test_person_key_is_not_a_hash_of_any_clear_value(demo_hub, demo_files):
    clear = clear_extracts(demo_files / "inbox")
    values = {v for e in clear.values() for column in e["columns"].values() for v in column if v}
    values |= {f"{agency}{sep}{pid}" for e, extract in clear.items()
               for agency, pid in extract["persons"] for sep in ("|", ":", "_", "", "\x1f")}
    values |= {v.lower() for v in values}
    with duckdb.connect(str(snapshot_path(demo_hub)), read_only=True) as con:
        keys = {k for (k,) in con.execute("SELECT person_key FROM core.person").fetchall()}
    assert len(keys) > 300
    bare = {k.removeprefix("pk_") for k in keys}
    for value in values:
        data = value.encode()
        for digest in (hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                       hashlib.sha1(data).hexdigest()):
            assert digest[:20] not in bare and digest not in keys

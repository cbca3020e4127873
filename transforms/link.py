"""Person linkage across agencies, on pseudonyms only.

Every agency person id (as its token) is a node. Nodes are joined when they
share an SSN token or a name + date-of-birth token. A name + date-of-birth
token that two different SSNs also carry is ambiguous (two people) and is not
used, so a third record cannot chain them together. Treatment clients take
part only with an active 42 CFR Part 2 consent.

Person keys are stable: a cluster keeps the key it had in the previous build;
a new cluster gets a key derived from its smallest member token.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import duckdb
import pandas as pd

from connectors.contracts import Contract, load_contracts
from leadhub.warehouse import NAME_DOB_TOKEN, TOKEN_COLUMNS

SSN = TOKEN_COLUMNS["ssn"]
PERSON = TOKEN_COLUMNS["agency_person_id"]


class _UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _identity_rows(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract]) -> pd.DataFrame:
    parts = []
    for c in contracts.values():
        roles = {col.identifier for col in c.identifier_columns}
        if not ({"ssn"} & roles or {"last_name", "first_name", "dob"} <= roles):
            continue  # person id only (e.g. episodes): linked through the extract that names them
        ssn = SSN if "ssn" in roles else "NULL"
        nd = NAME_DOB_TOKEN if {"last_name", "first_name", "dob"} <= roles else "NULL"
        consent = "WHERE consent_status = 'active'" if c.part2 and c.column_names.count("consent_status") else ""
        parts.append(f"SELECT DISTINCT '{c.agency}' AS agency, {PERSON} AS person_token, "
                     f"{ssn} AS ssn_token, {nd} AS name_dob_token FROM current.{c.name} {consent}")
    if not parts:
        return pd.DataFrame(columns=["agency", "person_token", "ssn_token", "name_dob_token"])
    return con.execute(" UNION ".join(parts)).df()


def link_people(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract] | None = None) -> dict[str, int]:
    """Rebuild core.person_link(agency, person_token, person_key) inside the caller's transaction."""
    contracts = contracts or load_contracts()
    rows = _identity_rows(con, contracts)
    uf = _UnionFind()
    nodes = list(zip(rows["agency"], rows["person_token"]))
    for node in nodes:
        uf.find(node)

    ssn_of_namedob: dict[str, set] = defaultdict(set)
    for nd, ssn in zip(rows["name_dob_token"], rows["ssn_token"]):
        if isinstance(nd, str) and isinstance(ssn, str):
            ssn_of_namedob[nd].add(ssn)
    first_by_token: dict[str, tuple] = {}
    for node, ssn, nd in zip(nodes, rows["ssn_token"], rows["name_dob_token"]):
        for kind, token in (("s", ssn), ("n", nd)):
            if not isinstance(token, str):
                continue
            if kind == "n" and len(ssn_of_namedob.get(token, ())) > 1:
                continue  # same name and birth date, different SSNs: two people
            key = kind + token
            if key in first_by_token:
                uf.union(first_by_token[key], node)
            else:
                first_by_token[key] = node

    previous = {}
    if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'core' "
                   "AND table_name = 'person_link'").fetchone()[0]:
        previous = {(a, t): k for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}

    members: dict[tuple, list] = defaultdict(list)
    for node in set(nodes):
        members[uf.find(node)].append(node)
    out = []
    for group in members.values():
        old = sorted({previous[n] for n in group if n in previous})
        key = old[0] if old else "pk_" + hashlib.sha256("|".join(min(group)).encode()).hexdigest()[:20]
        out.extend((a, t, key) for a, t in group)

    link = pd.DataFrame(out, columns=["agency", "person_token", "person_key"])
    con.execute("CREATE OR REPLACE TABLE core.person_link (agency VARCHAR NOT NULL, "
                "person_token VARCHAR NOT NULL, person_key VARCHAR NOT NULL, PRIMARY KEY (agency, person_token))")
    con.register("new_links", link)
    con.execute("INSERT INTO core.person_link SELECT agency, person_token, person_key FROM new_links "
                "ORDER BY person_key, agency, person_token")
    con.unregister("new_links")
    return {"agency_ids": len(link), "persons": int(link["person_key"].nunique()) if len(link) else 0}

"""Sealing and expungement orders as the warehouse remembers them: keyed tokens only.

An order names an agency's record ids or person ids. The hub keeps neither: it keeps
``seal_token``s, HMACs under the master key's ``seal`` subkey, of the record id (the first
primary-key column of the agency's extracts, e.g. an arrest number) or of the person's
staging token. A different subkey from pseudonymization means a sealed token never equals
a token found in staging, so a scan for the sealed person's tokens finds none in the order
table either. Intake computes the same tokens for each delivery and drops the rows an order
sealed (``drop_sealed``); the ledger counts them.
"""

from __future__ import annotations

import hmac

import duckdb

from leadhub.core.contracts import Contract
from leadhub.core.keys import MasterKey
from leadhub.core.warehouse import TOKEN_COLUMNS

RECORD, PERSON = "record", "person"


def seal_token(key: MasterKey, agency: str, kind: str, value: str) -> str:
    """The keyed token of one sealed record id (kind ``record``) or person token (``person``)."""
    return _tokens(key, agency, kind)(value)


def _tokens(key: MasterKey, agency: str, kind: str):
    """``seal_token`` for many values: the subkey is derived once (HKDF costs as much as the HMAC)."""
    subkey, prefix = key.subkey("seal"), f"{kind}:{agency}\x1f"
    return lambda value: hmac.digest(subkey, f"{prefix}{value.strip()}".encode(), "sha256").hex()


def record_column(contract: Contract) -> str | None:
    """The column an order's record ids name: the first primary-key column, if not an identifier."""
    first = contract.column(contract.primary_key[0])
    return None if first.identifier else first.name


def sealed_tokens(con: duckdb.DuckDBPyConnection, agency: str) -> set[str]:
    return {t for (t,) in con.execute(
        "SELECT DISTINCT record_token FROM ops.sealed_records WHERE agency = ?", [agency]).fetchall()}


def drop_sealed(con: duckdb.DuckDBPyConnection, key: MasterKey, contract: Contract, batch_id: str) -> int:
    """Delete the rows of staging batch ``batch_id`` that an order sealed; returns how many.

    Runs inside intake's open transaction, after the rows are inserted and before they are
    checked against the current rows, so a sealed row is never loaded or counted as current.
    """
    sealed = sealed_tokens(con, contract.agency)
    if not sealed:
        return 0
    table = f"staging.{contract.name}"
    targets = []  # (column expression, its token function)
    column = record_column(contract)
    if column:
        targets.append((f'"{column}"::VARCHAR', _tokens(key, contract.agency, RECORD)))
    if any(c.identifier == "agency_person_id" for c in contract.columns):
        targets.append((TOKEN_COLUMNS["agency_person_id"], _tokens(key, contract.agency, PERSON)))
    conditions, params = [], []
    for expr, token in targets:
        values = [v for (v,) in con.execute(
            f"SELECT DISTINCT {expr} FROM {table} WHERE _batch_id = ? AND {expr} IS NOT NULL",
            [batch_id]).fetchall() if token(v) in sealed]
        if values:
            conditions.append(f"{expr} IN (SELECT unnest(?::VARCHAR[]))")
            params.append(values)
    if not conditions:
        return 0
    where = f"_batch_id = ? AND ({' OR '.join(conditions)})"
    # DuckDB's DELETE returns the number of rows it deleted (fetchall: no result left open).
    (dropped,) = con.execute(f"DELETE FROM {table} WHERE {where}", [batch_id, *params]).fetchall()[0]
    return dropped

"""Sealing and expungement orders as the hub remembers them: keyed tokens only.

An order names an agency's record ids or person ids. The hub keeps neither: it keeps
``seal_token``s, HMACs under the master key's ``seal`` subkey, of the record id (the first
primary-key column of the agency's extracts, e.g. an arrest number) or of the person's
staging token. A different subkey from pseudonymization means a sealed token never equals
a token found in staging, so a scan for the sealed person's tokens finds none in the order
table either. Intake computes the same tokens for each delivery and drops the rows an order
sealed, blanks the cells of another agency's extract that quote a sealed record id
(``drop_sealed``; the ledger counts the rows), and rewrites the delivery's archived original
without them (``redact_archived``).

Key rotation cannot recompute a token under the new key without the sealed id, which the hub
never keeps. So ``rotate-key`` carries the old key's ``seal`` subkey forward instead: the
seal subkeys of every earlier key ("generations") are kept in ``<data dir>/steward/``,
encrypted under a key derived from the current key's ``seal`` subkey
(``seal-keys.<key id>.enc``), and a record id is looked up under every generation. The
warehouse holds tokens and never a key; the key file alone opens the generations. A person
token is itself keyed by the pseudonymization key, so an old generation's person tokens
match nothing after a rotation: a person order also remembers the person's record ids, which
stay sealed, and is entered again with ``leadhub seal --renew`` to cover that person's new
records (docs/linkage.md, "Sealing orders across a rotation").
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadhub.core.audit import steward_dir
from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.files import atomic_write_bytes, make_private_dir, replace_durably
from leadhub.core.keys import MasterKey
from leadhub.core.readers import Source, reopen
from leadhub.core.redact import encrypt_bytes, person_column, record_column, renumber_rows, rewrite_original
from leadhub.core.settings import Settings
from leadhub.core.warehouse import TOKEN_COLUMNS, utcnow

RECORD, PERSON = "record", "person"
KEYRING_MAGIC = b"LHS1"


def seal_token(key: MasterKey, agency: str, kind: str, value: str) -> str:
    """The keyed token of one sealed record id (kind ``record``) or person token (``person``)."""
    return token_function(key.subkey("seal"), agency, kind)(value)


def token_function(subkey: bytes, agency: str, kind: str):
    """``seal_token`` for many values under one seal subkey (derived once: HKDF costs as much as the HMAC)."""
    prefix = f"{kind}:{agency}\x1f"
    return lambda value: hmac.digest(subkey, f"{prefix}{value.strip()}".encode(), "sha256").hex()


# --- seal subkeys of earlier keys ------------------------------------------------------------------

def keyring_path(settings: Settings, key: MasterKey) -> Path:
    return steward_dir(settings) / f"seal-keys.{key.key_id}.enc"


def _wrapping_key(key: MasterKey) -> bytes:
    # Domain-separated from the seal tokens, whose inputs always hold "kind:agency".
    return hmac.digest(key.subkey("seal"), b"leadhub/seal-keyring", "sha256")


def earlier_seal_keys(settings: Settings, key: MasterKey) -> dict[str, bytes]:
    """{key id: seal subkey} of the keys before ``key`` (none before a first rotation)."""
    path = keyring_path(settings, key)
    if not path.exists():
        return {}
    blob = path.read_bytes()
    aad = KEYRING_MAGIC + key.key_id.encode()
    try:
        if not blob.startswith(KEYRING_MAGIC):
            raise ValueError
        payload = AESGCM(_wrapping_key(key)).decrypt(blob[4:16], blob[16:], aad)
        return {k: bytes.fromhex(v) for k, v in json.loads(payload).items()}
    except Exception:
        raise LeadHubError(f"{path} cannot be decrypted with key {key.key_id}: the seal keys of earlier "
                           "keys are unreadable, so sealed records could not be recognised") from None


def carry_seal_keys(settings: Settings, old: MasterKey, new: MasterKey) -> int:
    """Keep the seal subkeys of ``old`` and of the keys before it under ``new``; returns how many.

    Written before the warehouse moves to ``new`` (a file named by the new key id, so the old
    key's file stays readable until then); ``drop_old_keyring`` removes the old key's file once
    nothing is left under it.
    """
    # Merged with the new key's file, should a finished rotation be run again.
    keys = {**earlier_seal_keys(settings, new), **earlier_seal_keys(settings, old), old.key_id: old.subkey("seal")}
    keys.pop(new.key_id, None)
    nonce = os.urandom(12)
    payload = json.dumps({k: v.hex() for k, v in sorted(keys.items())}).encode()
    blob = KEYRING_MAGIC + nonce + AESGCM(_wrapping_key(new)).encrypt(
        nonce, payload, KEYRING_MAGIC + new.key_id.encode())
    target = keyring_path(settings, new)
    make_private_dir(target.parent)
    atomic_write_bytes(target, blob)
    return len(keys)


def drop_old_keyring(settings: Settings, old: MasterKey) -> None:
    keyring_path(settings, old).unlink(missing_ok=True)


def _subkeys(settings: Settings, key: MasterKey, kind: str) -> list[bytes]:
    """The seal subkeys a token of ``kind`` may have been made under: a record id under every
    key generation; a person token only under the current key (it is keyed by it)."""
    current = [key.subkey("seal")]
    return current + list(earlier_seal_keys(settings, key).values()) if kind == RECORD else current


# --- intake ----------------------------------------------------------------------------------------

def sealed_tokens(con: duckdb.DuckDBPyConnection, agency: str) -> set[str]:
    return {t for (t,) in con.execute(
        "SELECT DISTINCT record_token FROM ops.sealed_records WHERE agency = ?", [agency]).fetchall()}


def quoting_columns(contract: Contract, agency: str, contracts: dict[str, Contract] | None = None) -> list[str]:
    """The plain columns of ``contract`` (another agency's extract) that quote ``agency``'s record
    ids: named like one of that agency's record columns (a jail booking's ``arrest_id``)."""
    if contract.agency == agency:
        return []
    named = {record_column(c) for c in (contracts or load_contracts()).values() if c.agency == agency} - {None}
    return [c.name for c in contract.columns if c.name in named and not c.identifier]


@dataclass
class Dropped:
    """What intake took out of one delivery: its sealed rows and its quotes of sealed record ids."""

    rows: tuple[int, ...] = ()                                # row numbers deleted from staging
    blank: dict[str, set[str]] = field(default_factory=dict)  # {column: quoted sealed ids}, now NULL

    def __bool__(self) -> bool:
        return bool(self.rows or self.blank)


def drop_sealed(settings: Settings, con: duckdb.DuckDBPyConnection, key: MasterKey, contract: Contract,
                batch_id: str) -> Dropped:
    """Delete the rows of staging batch ``batch_id`` that an order sealed, and empty its cells that
    quote another agency's sealed record id; returns what went, for ``redact_archived``.

    Runs inside intake's open transaction, after the rows are inserted and before they are
    checked against the current rows, so a sealed row is never loaded or counted as current.
    """
    table = f"staging.{contract.name}"
    dropped = Dropped()
    ordered = {a for (a,) in con.execute("SELECT DISTINCT agency FROM ops.sealed_records").fetchall()}
    if not ordered:
        return dropped  # no order yet: nothing to look up
    sealed = sealed_tokens(con, contract.agency) if contract.agency in ordered else set()
    if sealed:
        targets = []  # (column expression, its token kind)
        if column := record_column(contract):
            targets.append((f'"{column}"::VARCHAR', RECORD))
        if person_column(contract):
            targets.append((TOKEN_COLUMNS["agency_person_id"], PERSON))
        conditions, params = [], []
        for expr, kind in targets:
            values = _sealed_values(con, table, expr, batch_id, settings, key, contract.agency, kind, sealed)
            if values:
                conditions.append(f"{expr} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(values)
        if conditions:
            rows = con.execute(f"DELETE FROM {table} WHERE _batch_id = ? AND ({' OR '.join(conditions)}) "
                               "RETURNING _row_number", [batch_id, *params]).fetchall()
            dropped.rows = tuple(sorted(n for (n,) in rows))
    contracts = load_contracts()
    for agency in sorted(ordered - {contract.agency}):
        columns = [c for c in quoting_columns(contract, agency, contracts) if contract.column(c).nullable]
        quoted = sealed_tokens(con, agency) if columns else set()
        for column in columns:
            expr = f'"{column}"::VARCHAR'
            values = _sealed_values(con, table, expr, batch_id, settings, key, agency, RECORD, quoted)
            if values:
                con.execute(f'UPDATE {table} SET "{column}" = NULL WHERE _batch_id = ? AND {expr} IN '
                            "(SELECT unnest(?::VARCHAR[]))", [batch_id, values])
                dropped.blank.setdefault(column, set()).update(v.strip() for v in values)
    return dropped


def _sealed_values(con, table: str, expr: str, batch_id: str, settings: Settings, key: MasterKey,
                   agency: str, kind: str, sealed: set[str]) -> list[str]:
    """The distinct values of ``expr`` in the batch whose token, under any seal subkey, is sealed."""
    tokens = [token_function(subkey, agency, kind) for subkey in _subkeys(settings, key, kind)]
    values = con.execute(f"SELECT DISTINCT {expr} FROM {table} WHERE _batch_id = ? AND {expr} IS NOT NULL",
                         [batch_id]).fetchall()
    return [v for (v,) in values if any(token(v) in sealed for token in tokens)]


def redact_archived(settings: Settings, con: duckdb.DuckDBPyConnection, key: MasterKey, contract: Contract,
                    file_id: str, batch_id: str, source: Source, dropped: Dropped) -> int:
    """Rewrite the archived original of an accepted delivery without what ``drop_sealed`` took
    out (re-encrypted; the ledger's ``redacted_rows`` counts the rows cut), so the archive never
    holds a sealed record; returns the rows cut.

    ``source`` holds the bytes intake read (the delivered file, or an encrypted drop's
    plaintext: its archived original becomes the redacted plaintext). Runs in intake's open
    transaction, just before its commit: the staging rows move up to their row of the rewrite
    in that transaction, and the rewrite is swapped in before the commit, so a run stopped in
    between leaves the delivery 'received' and intake takes it again from the inbox.
    """
    if not dropped:
        return 0
    (archive,) = con.execute("SELECT archive_path FROM ops.file_ledger WHERE file_id = ?", [file_id]).fetchone()
    if not archive:
        raise LeadHubError(f"ledger entry {file_id} has no archived original to redact")
    path = settings.data_dir / archive
    with reopen(source, "rb") as f:
        plain = f.read()
    try:
        new, cut, _ = rewrite_original(plain, contract, drop=dropped.rows, blank=dropped.blank)
    except ValueError as e:
        raise LeadHubError(f"{Path(archive).name}: rule 'redaction' failed: {e}") from None
    del plain
    if set(cut) != set(dropped.rows):
        raise LeadHubError(f"{Path(archive).name}: rule 'redaction' failed: the original's sealed rows do not "
                           "match the warehouse's")
    target = path.with_name(path.name + ".sealed")
    encrypt_bytes(new, target, key)
    try:
        if cut:
            renumber_rows(con, contract.name, [batch_id], cut)
            con.execute("UPDATE ops.file_ledger SET redacted_rows = coalesce(redacted_rows, 0) + ?, "
                        "updated_at = ? WHERE file_id = ?", [len(cut), utcnow(), file_id])
        replace_durably(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return len(cut)

"""Replace identifier columns by keyed HMAC-SHA256 pseudonyms.

What comes out holds no identifier: names, dates of birth, SSNs, agency
person ids, addresses and phones become 64-hex tokens that only the holder of
the key could recompute; the date of birth survives only as age at the event.
Tokens are domain-separated so an SSN token can never equal a phone token.

Beside the exact tokens, each record gets keyed similarity encodings of its
names, date of birth and SSN (``*_enc`` columns, see transforms/encodings.py)
so linkage can tolerate typing errors without ever seeing clear text.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime

from connectors.contracts import Contract
from leadhub.keys import MasterKey
from leadhub.warehouse import ENCODING_COLUMNS, NAME_DOB_TOKEN, TOKEN_COLUMNS
from transforms import normalize
from transforms.encodings import Encoder, canonical, load_settings, to_text


class Pseudonymizer:
    def __init__(self, key: MasterKey, linkage_settings: dict | None = None):
        self._key = key.subkey("pseudonym")
        self.key_id = key.key_id
        self.encoder = Encoder(key.subkey("similarity"), linkage_settings or load_settings())

    def encodings(self, by_role: dict[str, list]) -> dict[str, list]:
        """Similarity-encoding columns (base64, NULL when missing) for the identifier roles present."""
        out = {}
        fields = self.encoder.settings["fields"]
        for field, column in ENCODING_COLUMNS.items():
            if field in by_role:
                values = [canonical(fields[field], v) for v in by_role[field]]
                out[column] = to_text(self.encoder.encode(field, values))
        return out

    def token(self, domain: str, value: str | None) -> str | None:
        if not value:
            return None
        return hmac.new(self._key, f"{domain}\x1f{value}".encode(), hashlib.sha256).hexdigest()

    def person_id_token(self, agency: str, person_id: str | None) -> str | None:
        """Agency person ids are scoped by agency: police 123 is not jail 123."""
        return self.token(f"apid:{agency}", (person_id or "").strip() or None)

    def name_dob_token(self, last: str | None, first: str | None, dob: date | None) -> str | None:
        last_n, first_n = normalize.surname(last), normalize.given_name(first)
        if not (last_n and first_n and dob):
            return None
        return self.token("namedob", f"{last_n}|{first_n}|{dob.isoformat()}")

    def columns(self, contract: Contract, cols: dict[str, list]) -> dict[str, list]:
        """Typed column lists of one chunk -> staging column lists without identifiers.

        ``cols`` maps every contract column to its parsed values (dates as
        ``date``, timestamps as ``datetime``); identifier lists are consumed
        and not returned.
        """
        n = len(next(iter(cols.values()))) if cols else 0
        out = {c.name: cols[c.name] for c in contract.plain_columns}
        by_role = {c.identifier: cols[c.name] for c in contract.identifier_columns}
        tok = self.token
        if "agency_person_id" in by_role:
            out[TOKEN_COLUMNS["agency_person_id"]] = [
                self.person_id_token(contract.agency, v) for v in by_role["agency_person_id"]]
        if "ssn" in by_role:
            out[TOKEN_COLUMNS["ssn"]] = [tok("ssn", normalize.ssn(v)) for v in by_role["ssn"]]
        if "address" in by_role:
            out[TOKEN_COLUMNS["address"]] = [tok("address", normalize.clean_text(v)) for v in by_role["address"]]
        if "phone" in by_role:
            out[TOKEN_COLUMNS["phone"]] = [tok("phone", normalize.phone(v)) for v in by_role["phone"]]
        if {"last_name", "first_name", "dob"} <= by_role.keys():
            out[NAME_DOB_TOKEN] = [self.name_dob_token(l, f, d) for l, f, d in
                                   zip(by_role["last_name"], by_role["first_name"], by_role["dob"])]
        if contract.age_at:
            events = cols[contract.age_at]
            out["age_at_event"] = [
                normalize.age_on(d, e.date() if isinstance(e, datetime) else e)
                for d, e in zip(by_role["dob"], events)]
        out.update(self.encodings(by_role))
        out["key_id"] = [self.key_id] * n
        return out

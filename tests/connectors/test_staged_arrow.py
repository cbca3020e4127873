"""Staged chunks: derived text columns travel as dictionary arrays, whatever form a stage hands over."""

import pyarrow as pa

from connectors.inbox import DERIVED_TEXT, _arrow_schema, _to_arrow
from leadhub.core.contracts import load_contracts


def _staged(contract, as_dictionary: bool) -> dict:
    schema = _arrow_schema(contract)
    cols = {}
    for f in schema:
        if f.name == "_row_number":
            continue
        if f.type == DERIVED_TEXT:
            values = pa.array(["a" * 64, None, "a" * 64])
            cols[f.name] = values.dictionary_encode() if as_dictionary else values
        else:
            cols[f.name] = pa.nulls(3, f.type)
    return cols


def test_plain_and_dictionary_stages_give_the_same_rows():
    contract = load_contracts()["jail_bookings"]
    schema = _arrow_schema(contract)
    derived = [f.name for f in schema if f.type == DERIVED_TEXT]
    assert {"person_token", "name_dob_token", "first_name_enc", "key_id"} <= set(derived)
    assert schema.field("booking_id").type == pa.string()  # delivered text stays plain
    plain = _to_arrow(contract, [1, 2, 3], _staged(contract, as_dictionary=False))
    coded = _to_arrow(contract, [1, 2, 3], _staged(contract, as_dictionary=True))
    assert plain.schema == coded.schema == schema
    assert plain.to_pylist() == coded.to_pylist()
    assert plain.column("person_token").null_count == 1

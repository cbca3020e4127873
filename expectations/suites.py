"""Expectation suites: generated from the extract contracts, kept as JSON.

Each contract gets one GX suite named after it (``police_arrests``) that
checks the pseudonymized staging frame, so raw identifiers never reach GX.
Expectations derived from the contract carry ``meta.source = "contract"``
and are rewritten on every regeneration; hand-written ones carry
``meta.source = "custom"`` and are kept. Every expectation says in
``meta.severity`` whether a failure blocks the batch (``critical``) or is
only reported (``warning``).

Regenerate after changing a contract::

    python -m expectations.suites
"""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.warehouse import NAME_DOB_TOKEN, TOKEN_COLUMNS, staging_columns, staging_key

SUITES_DIR = Path(__file__).parent / "suites"
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "transforms" / "reference"

CRITICAL = "critical"
WARNING = "warning"
TOKEN_REGEX = "^[0-9a-f]{64}$"
AGE_RANGE = (10, 100)
# Columns added by the loader that every staging row must carry.
LINEAGE_COLUMNS = ("key_id", "_row_number")
# Staging as validated: the batch id is assigned when the batch is recorded, after validation.
NOT_VALIDATED = ("_batch_id",)


def validated_columns(contract: Contract) -> list[str]:
    """The columns, in order, of the staging frame handed to validation."""
    return [name for name, _ in staging_columns(contract) if name not in NOT_VALIDATED]


def token_columns(contract: Contract) -> list[str]:
    tokens = set(TOKEN_COLUMNS.values()) | {NAME_DOB_TOKEN}
    return [c for c in validated_columns(contract) if c in tokens]


@cache
def reference_values(name: str) -> tuple[str, ...]:
    """Codes of a reference table (first column of ``transforms/reference/<name>.csv``)."""
    with open(REFERENCE_DIR / f"{name}.csv", newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        return tuple(sorted({row[0] for row in rows if row}))


def _required_tokens(contract: Contract) -> list[str]:
    """Token columns that must be filled because every source identifier behind them is required."""
    required = {c.identifier for c in contract.identifier_columns if not c.nullable}
    tokens = [token for role, token in TOKEN_COLUMNS.items() if role in required]
    if {"last_name", "first_name", "dob"} <= required:
        tokens.append(NAME_DOB_TOKEN)
    return tokens


def _expectation(cls_name: str, severity: str, description: str, source: str = "contract",
                 **kwargs) -> dict:
    """One expectation as GX stores it, written out without importing GX.

    Intake reads suites in its own process, which never needs GX otherwise (importing it
    costs about 3 CPU-s); ``gx_config`` builds the same dict through GX's class, and
    ``write_suites`` and the tests check every generated expectation with it, so bad
    kwargs still fail. Kwargs are given as GX keeps them (no ``mostly=1.0``, floats for
    numeric bounds).
    """
    return {"type": re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower(), "kwargs": kwargs,
            "meta": {"severity": severity, "source": source}, "description": description,
            "severity": severity}


def gx_config(config: dict) -> dict:
    """``config`` built through its GX expectation class, as GX would store it."""
    import great_expectations.expectations as gxe

    cls_name = "".join(part.title() for part in config["type"].split("_"))
    exp = getattr(gxe, cls_name)(**config["kwargs"], description=config["description"],
                                 severity=config["severity"], meta=config["meta"])
    built = exp.configuration.to_json_dict()
    built.pop("id", None)
    return built


def contract_expectations(contract: Contract) -> list[dict]:
    """The expectations a contract implies, in a stable order: table checks, then by column."""
    columns = validated_columns(contract)
    key = staging_key(contract)
    out = [
        _expectation("ExpectTableColumnsToMatchOrderedList", CRITICAL,
                     "columns match the staging layout", column_list=columns),
        _expectation("ExpectTableRowCountToBeBetween", CRITICAL, "has at least one row",
                     min_value=1),
    ]
    if len(key) > 1:
        out.append(_expectation("ExpectCompoundColumnsToBeUnique", CRITICAL,
                                f"primary key ({', '.join(key)}) is unique", column_list=key))
    else:
        out.append(_expectation("ExpectColumnValuesToBeUnique", CRITICAL,
                                "primary key is unique", column=key[0]))

    not_null = {c.name for c in contract.plain_columns if not c.nullable}
    not_null |= set(_required_tokens(contract)) | set(LINEAGE_COLUMNS)
    tokens = token_columns(contract)
    for name in columns:
        if name in not_null:
            out.append(_expectation("ExpectColumnValuesToNotBeNull", CRITICAL,
                                    "is present on every row", column=name))
        if name in tokens:
            out.append(_expectation("ExpectColumnValuesToMatchRegex", CRITICAL,
                                    "is a 64-hex token", column=name, regex=TOKEN_REGEX))
        if name == "age_at_event":
            low, high = AGE_RANGE
            out.append(_expectation("ExpectColumnValuesToBeBetween", WARNING,
                                    f"between {low} and {high}", column=name,
                                    min_value=float(low), max_value=float(high)))
        if name not in contract.column_names or contract.column(name).identifier:
            continue
        col = contract.column(name)
        if col.known_values is not None:
            out.append(_expectation("ExpectColumnValuesToBeInSet", CRITICAL,
                                    "values in known set", column=name,
                                    value_set=list(col.known_values)))
        if col.reference:
            table = col.reference.removesuffix("_codes").replace("_", " ")
            out.append(_expectation("ExpectColumnValuesToBeInSet", CRITICAL,
                                    f"values in {table} table", column=name,
                                    value_set=list(reference_values(col.reference))))
    return out


def _contract_file(contract: Contract) -> str:
    """``agency/file.yaml``: relative, so the JSON is the same on every machine."""
    if contract.source is None:
        return f"{contract.agency}/{contract.extract}.yaml"
    return Path(contract.source).relative_to(Path(contract.source).parents[1]).as_posix()


def build_suite(contract: Contract) -> dict:
    """The contract-generated suite for one extract, as a JSON-able GX suite dict."""
    return {
        "name": contract.name,
        "expectations": contract_expectations(contract),
        "meta": {"contract": _contract_file(contract)},
    }


def custom_expectations(suite: dict) -> list[dict]:
    return [e for e in suite.get("expectations", []) if e.get("meta", {}).get("source") == "custom"]


def merge_suite(generated: dict, existing: dict | None) -> dict:
    """Generated expectations replace the old contract ones; custom ones are kept, after them."""
    merged = dict(generated)
    merged["expectations"] = generated["expectations"] + custom_expectations(existing or {})
    return merged


def suite_path(name: str, directory: Path = SUITES_DIR) -> Path:
    return Path(directory) / f"{name}.json"


def dumps(suite: dict) -> str:
    """Stable JSON so regeneration without a contract change leaves the files untouched."""
    return json.dumps(suite, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def load_suite(name: str, directory: Path = SUITES_DIR) -> dict:
    """The committed suite file as it is."""
    return json.loads(suite_path(name, directory).read_text(encoding="utf-8"))


def suite_for(name: str, directory: Path = SUITES_DIR) -> dict:
    """The suite the hub validates with: generated from the extract's contract, plus the
    hand-written part of its file. A new or changed contract needs no regenerated file."""
    path = suite_path(name, directory)
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    contract = load_contracts().get(name)
    if contract is None:
        if stored is None:
            raise FileNotFoundError(f"no contract and no suite file for {name}")
        return stored
    return merge_suite(build_suite(contract), stored)


def write_suites(directory: Path = SUITES_DIR,
                 contracts: dict[str, Contract] | None = None) -> list[Path]:
    """(Re)write one suite file per contract, keeping each file's custom expectations."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for contract in (contracts or load_contracts()).values():
        for config in contract_expectations(contract):
            if gx_config(config) != config:
                raise ValueError(f"{contract.name}: {config['type']} is not as GX stores it: {config}")
        path = suite_path(contract.name, directory)
        existing = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        text = dumps(merge_suite(build_suite(contract), existing))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    for path in write_suites():
        print(path)


if __name__ == "__main__":
    main()

"""Contract declarations: names that become folders, tables and SQL columns must be plain."""

import pytest

from leadhub.core.contracts import CONTRACTS_DIR, ContractError, load_contracts


@pytest.mark.parametrize("old, new", [
    ("agency: treatment", "agency: ../../etc"),
    ("extract: contacts", 'extract: "contacts; DROP TABLE ops.file_ledger"'),
    ("{name: service_type,", '{name: "service_type\\" VARCHAR, x",'),
])
def test_names_that_would_become_paths_or_sql_are_refused(tmp_path, old, new):
    text = (CONTRACTS_DIR / "treatment" / "contacts.yaml").read_text()
    assert old in text
    folder = tmp_path / "treatment"
    folder.mkdir()
    (folder / "contacts.yaml").write_text(text.replace(old, new))
    with pytest.raises(ContractError, match="not a plain name"):
        load_contracts(tmp_path)


def test_the_shipped_contracts_have_plain_names():
    assert len(load_contracts()) == 8


def test_every_shipped_contract_loads_with_every_column_key_known():
    # Every column written in every file becomes a Column, in order (a stray key would have failed the load).
    import yaml

    for contract in load_contracts().values():
        raw = yaml.safe_load(contract.source.read_text())
        assert contract.column_names == [c["name"] for c in raw["columns"]]


@pytest.mark.parametrize("old, new, message", [
    # a misspelt top-level key
    ("history: incremental", "histroy: incremental",
     "histroy: unknown key (known: agency, extract, description, file_pattern, format, "),
    # a misspelt key of the fourth column (index 3): the path to it is named
    ("{name: service_type,", "{name: service_type, disclosur: plain,",
     "columns[3].disclosur: unknown key (known: name, type, nullable, description, identifier, "),
    # a misspelt key inside format
    ("header: true", "headers: true", "format.headers: unknown key (known: type, delimiter, "),
])
def test_an_unknown_key_is_refused_naming_the_file_and_the_key(tmp_path, old, new, message):
    text = (CONTRACTS_DIR / "treatment" / "contacts.yaml").read_text()
    assert old in text
    folder = tmp_path / "treatment"
    folder.mkdir()
    (folder / "contacts.yaml").write_text(text.replace(old, new))
    with pytest.raises(ContractError) as refused:
        load_contracts(tmp_path)
    assert str(refused.value).startswith(f"contract {folder / 'contacts.yaml'}: {message}")

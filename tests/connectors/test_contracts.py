"""Contract declarations: names that become folders, tables and SQL columns must be plain."""

import pytest

from connectors.contracts import CONTRACTS_DIR, ContractError, load_contracts


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
    assert len(load_contracts()) == 7

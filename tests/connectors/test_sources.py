"""Pull-source declarations are checked when they are read, before any connection is made."""

import pytest
import yaml

from connectors.sources import PullError, load_sources


SFTP = {"kind": "sftp", "agency": "treatment", "host": "h", "user": "u", "private_key_env": "K",
        "known_hosts": "/k", "remote_dir": "/r"}
SQL = {"kind": "sql", "agency": "jail", "extract": "bookings", "url_env": "U", "table": "t",
       "high_water_mark": {"column": "updated_at", "type": "timestamp"}}


@pytest.mark.parametrize("decl, key, known", [
    ({**SFTP, "hostname": "typo"}, "hostname", "kind, agency, enabled, description, schedule, host, port, "),
    ({**SQL, "bach_size": 5}, "bach_size", "kind, agency, enabled, description, schedule, extract, url_env, "),
    # nested: the path to the key is named, and the keys known at that level
    ({**SQL, "high_water_mark": {"column": "updated_at", "typ": "timestamp"}}, "high_water_mark.typ",
     "column, type)"),
])
def test_a_misspelt_field_is_refused_by_file_and_key(tmp_path, decl, key, known):
    (tmp_path / "feed.yaml").write_text(yaml.safe_dump(decl))
    with pytest.raises(PullError) as refused:
        load_sources(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"source {tmp_path / 'feed.yaml'}: {key}: unknown key (known: ")
    assert known in message and "\n" not in message


def test_a_wrong_value_type_is_refused_without_quoting_the_value(tmp_path):
    (tmp_path / "feed.yaml").write_text(yaml.safe_dump({**SFTP, "port": "twenty-two"}))
    with pytest.raises(PullError, match=r"feed.yaml: port: input should be a valid integer") as refused:
        load_sources(tmp_path)
    assert "twenty-two" not in str(refused.value)


def test_a_secret_in_the_declaration_is_refused(tmp_path):
    (tmp_path / "feed.yaml").write_text(yaml.safe_dump({**SFTP, "password": "hunter2"}))
    with pytest.raises(PullError, match="secrets never go in this file") as refused:
        load_sources(tmp_path)
    assert "hunter2" not in str(refused.value)


def test_every_shipped_source_loads_and_passes_its_connector_checks():
    from connectors.sources import SOURCES_DIR
    from connectors.sources.run import check_source

    sources = load_sources(SOURCES_DIR)
    assert {n: (s.kind, s.agency, s.enabled) for n, s in sources.items()} == {
        "jail_jms": ("sql", "jail", False), "treatment_sftp": ("sftp", "treatment", False)}
    for source in sources.values():
        check_source(source)
    assert sources["jail_jms"].declaration.high_water_mark.column == "updated_at"
    assert sources["treatment_sftp"].declaration.port == 22


def test_delivery_never_replaces_a_waiting_file_and_drops_an_identical_one(tmp_path):
    from connectors.sources import deliver

    final = tmp_path / "jail_bookings_a_b.csv"
    final.write_text("first\n")
    part = tmp_path / "x.part"
    part.write_text("first\n")
    deliver(part, final)
    assert final.read_text() == "first\n" and not part.exists()
    part.write_text("different\n")
    with pytest.raises(PullError, match="still waiting"):
        deliver(part, final)
    assert final.read_text() == "first\n" and not part.exists()

"""Pull-source declarations are checked when they are read, before any connection is made."""

import pytest
import yaml

from connectors.sources import PullError, load_sources


@pytest.mark.parametrize("decl, unknown", [
    ({"kind": "sftp", "agency": "treatment", "host": "h", "user": "u", "private_key_env": "K",
      "known_hosts": "/k", "remote_dir": "/r", "hostname": "typo"}, "hostname"),
    ({"kind": "sql", "agency": "jail", "extract": "bookings", "url_env": "U", "table": "t",
      "high_water_mark": {"column": "updated_at", "type": "timestamp"}, "bach_size": 5}, "bach_size"),
])
def test_a_misspelt_field_is_refused_by_name(tmp_path, decl, unknown):
    (tmp_path / "feed.yaml").write_text(yaml.safe_dump(decl))
    with pytest.raises(PullError, match=f"feed.yaml: unknown field\\(s\\) {unknown}$"):
        load_sources(tmp_path)


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

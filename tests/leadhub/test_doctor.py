"""`leadhub doctor` on a real installation folder: clean when it follows the roles map, one line per deviation."""

from __future__ import annotations

import grp
import os

import pytest

from leadhub import cli
from leadhub.core.audit import steward_dir
from leadhub.core.contracts import agencies


@pytest.fixture
def installed(settings, monkeypatch):
    """Every path of the roles map with its mode; groups are numeric ids no host group uses."""
    if os.geteuid() != 0:
        pytest.skip("setting another group on a folder needs root")
    taken = {g.gr_gid for g in grp.getgrall()}
    free = iter(gid for gid in range(61000, 62000) if gid not in taken)
    analysts = next(free)
    agency_gids = {agency: next(free) for agency in agencies()}
    monkeypatch.setenv("LEADHUB_STEWARD_USER", str(os.geteuid()))
    monkeypatch.setenv("LEADHUB_ANALYST_GROUP", str(analysts))
    monkeypatch.setenv("LEADHUB_AGENCY_GROUPS", ",".join(f"{a}={g}" for a, g in agency_gids.items()))
    d = settings.data_dir
    for path in (d / "archive", d / "quarantine", d / "warehouse", d / "state", steward_dir(settings)):
        path.mkdir(exist_ok=True)
        os.chmod(path, 0o700)
    for name in ("published", "reports"):
        (d / name).mkdir(exist_ok=True)
        os.chown(d / name, -1, analysts)
        os.chmod(d / name, 0o2750)
    for agency, gid in agency_gids.items():
        settings.inbox(agency).mkdir(parents=True, exist_ok=True)
        os.chown(settings.inbox(agency), -1, gid)
        os.chmod(settings.inbox(agency), 0o2770)
    os.chmod(d, 0o711)
    os.chmod(settings.inbox_dir, 0o711)
    settings.warehouse_path.write_bytes(b"x")
    os.chmod(settings.warehouse_path, 0o600)
    (steward_dir(settings) / "crosswalk.enc").write_bytes(b"x")
    os.chmod(steward_dir(settings) / "crosswalk.enc", 0o600)
    return settings


def test_doctor_is_clean_on_a_correct_install(installed, capsys):
    assert cli.main(["doctor"]) == 0
    assert "match the roles map" in capsys.readouterr().out


def test_doctor_names_every_loosening_and_fix_narrows_them(installed, capsys):
    s = installed
    crosswalk = steward_dir(s) / "crosswalk.enc"
    os.chmod(s.warehouse_path, 0o644)
    os.chmod(s.archive_dir, 0o755)
    os.chmod(s.inbox("police"), 0o2777)
    os.chmod(s.key_file, 0o644)
    os.chmod(crosswalk, 0o640)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    # One line each, path then expected then found, worked out from the map.
    assert sorted(out) == sorted([
        f"{s.archive_dir}: expected mode 0700, found 0755",
        f"{s.inbox('police')}: expected mode 2770, found 2777",
        f"{s.warehouse_path}: expected mode at most 0600, found 0644",
        f"{crosswalk}: expected mode at most 0600, found 0640",
        f"{s.key_file}: expected mode 0600, found 0644",
    ])
    assert cli.main(["doctor", "--fix"]) == 0
    out = capsys.readouterr().out
    assert out.count("narrowed ") == 5 and "match the roles map" in out
    assert cli.main(["doctor"]) == 0


def test_doctor_names_a_file_below_a_steward_folder_that_another_user_owns(installed, capsys):
    """The steward owns every path of the map, files below its folders too: a warehouse or an
    archived original owned by another account (a careless restore, a planted file) is named.
    An agency's uploads belong to its uploader, so files in an inbox are not."""
    s = installed
    other = 65534  # nobody
    os.chown(s.warehouse_path, other, -1)
    upload = s.inbox("police") / "police_arrests_20250101.csv"
    upload.write_bytes(b"x")
    os.chmod(upload, 0o640)
    os.chown(upload, other, -1)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    # Exactly one deviation: the warehouse file's owner; the upload in the inbox is the uploader's.
    assert out == [f"{s.warehouse_path}: expected owner {os.geteuid()}, found {_name(other)}"]


def _name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

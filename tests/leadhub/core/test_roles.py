"""The roles map checked against real folders: a correct install is clean, each loosening is named."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from leadhub.core.audit import steward_dir
from leadhub.core.errors import LeadHubError
from leadhub.core.roles import Names, check, fix

AGENCIES = ["jail", "police"]


def _free_gids(n: int) -> list[int]:
    """Group ids with no name on this host: the test must not add groups to the machine."""
    taken = {g.gr_gid for g in grp.getgrall()}
    return [gid for gid in range(61000, 62000) if gid not in taken][:n]


@pytest.fixture
def install(settings):
    """A correct installation: every path of the map with its mode, groups as numeric ids."""
    if os.geteuid() != 0:
        pytest.skip("setting another group on a folder needs root")
    analysts, jail, police = _free_gids(3)
    names = Names(steward=str(os.geteuid()), analysts=str(analysts),
                  agency_groups=(("jail", str(jail)), ("police", str(police))))
    d = settings.data_dir
    for sub in ("archive", "quarantine", "warehouse", "state"):
        (d / sub).mkdir(exist_ok=True)
        os.chmod(d / sub, 0o700)
    steward_dir(settings).mkdir()
    os.chmod(steward_dir(settings), 0o700)
    (steward_dir(settings) / "crosswalk.enc").write_bytes(b"x")
    os.chmod(steward_dir(settings) / "crosswalk.enc", 0o600)
    settings.warehouse_path.write_bytes(b"x")
    os.chmod(settings.warehouse_path, 0o600)
    for sub in ("published", "reports"):
        (d / sub).mkdir(exist_ok=True)
        os.chown(d / sub, -1, analysts)
        os.chmod(d / sub, 0o2750)
    (d / "published" / "lead.duckdb").write_bytes(b"x")
    os.chmod(d / "published" / "lead.duckdb", 0o640)
    for agency, gid in (("jail", jail), ("police", police)):
        inbox = settings.inbox(agency)
        inbox.mkdir(parents=True)
        os.chown(inbox, -1, gid)
        os.chmod(inbox, 0o2770)
    (settings.inbox("police") / "arrests.csv").write_bytes(b"x")
    os.chmod(settings.inbox("police") / "arrests.csv", 0o644)  # an SFTP upload under umask 022
    for path in (d, settings.inbox_dir):
        os.chmod(path, 0o711)
    os.chmod(settings.key_file, 0o600)
    return settings, names


def lines(settings, names) -> list[str]:
    return [str(d) for d in check(settings, AGENCIES, names)]


def test_a_correct_install_has_no_deviation(install):
    assert lines(*install) == []


def test_a_loosened_install_names_each_deviation_once_with_path_expected_and_found(install):
    settings, names = install
    d = settings.data_dir
    os.chmod(settings.warehouse_path, 0o644)
    os.chmod(d / "archive", 0o755)
    os.chmod(settings.inbox("police"), 0o2777)
    os.chmod(settings.key_file, 0o644)
    os.chmod(steward_dir(settings) / "crosswalk.enc", 0o640)
    # Worked out from the map: files under warehouse/ and steward/ at most 0600, archive/ 0700,
    # an agency inbox 2770, the key at most 0600.
    assert sorted(lines(settings, names)) == sorted([
        f"{d / 'archive'}: expected mode 0700, found 0755",
        f"{settings.inbox('police')}: expected mode 2770, found 2777",
        f"{settings.warehouse_path}: expected mode at most 0600, found 0644",
        f"{steward_dir(settings) / 'crosswalk.enc'}: expected mode at most 0600, found 0640",
        f"{settings.key_file}: expected mode 0600, found 0644",
    ])


def test_wrong_group_owner_and_missing_bits_are_named(install):
    settings, names = install
    d = settings.data_dir
    os.chown(settings.inbox("jail"), -1, int(dict(names.agency_groups)["police"]))
    os.chmod(d / "reports", 0o2700)  # analysts could not read the reports
    os.chown(d / "quarantine", 4242, -1)
    found = lines(settings, names)
    assert f"{settings.inbox('jail')}: expected group {dict(names.agency_groups)['jail']}, " \
           f"found {dict(names.agency_groups)['police']}" in found
    assert f"{d / 'reports'}: expected mode 2750, found 2700" in found
    assert f"{d / 'quarantine'}: expected owner {names.steward}, found 4242" in found
    assert len(found) == 3


def test_missing_required_paths_are_named_and_optional_ones_are_not(install):
    settings, names = install
    os.rmdir(settings.inbox("jail"))
    settings.key_file.unlink()
    for f in (settings.data_dir / "published").iterdir():
        f.unlink()
    os.rmdir(settings.data_dir / "published")
    assert sorted(lines(settings, names)) == sorted([f"{settings.inbox('jail')}: expected present, found missing",
                                                     f"{settings.key_file}: expected present, found missing"])


def test_fix_narrows_wide_modes_and_leaves_what_it_cannot_fix(install):
    settings, names = install
    d = settings.data_dir
    os.chmod(d / "archive", 0o755)
    os.chmod(settings.key_file, 0o644)
    os.chmod(d / "reports", 0o750)  # without setgid a new report would not take the analysts' group
    changed = fix(settings, AGENCIES, names)
    assert sorted(changed) == sorted([d / "archive", settings.key_file])
    assert stat.S_IMODE(os.stat(d / "archive").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(settings.key_file).st_mode) == 0o600
    # fix only removes bits: the analysts' missing read stays for the steward to decide.
    assert lines(settings, names) == [f"{d / 'reports'}: expected mode 2750, found 0750"]


def test_agency_groups_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEADHUB_STEWARD_USER", "hub")
    monkeypatch.setenv("LEADHUB_AGENCY_GROUPS", "police=51001,jail=51003")
    names = Names.from_env()
    assert names.steward == "hub"
    assert names.group("agency", "police") == "51001"
    assert names.group("agency", "treatment") == "leadhub-treatment"
    assert names.group("analysts") == "leadhub-analysts"
    monkeypatch.setenv("LEADHUB_AGENCY_GROUPS", "police")
    with pytest.raises(LeadHubError, match="LEADHUB_AGENCY_GROUPS"):
        Names.from_env()


def test_a_group_writable_report_is_named_and_a_world_readable_one_behind_the_folder_is_not(install):
    settings, names = install
    report = settings.reports_dir / "lead_report.html"
    report.write_text("x")
    os.chmod(report, 0o644)  # written under umask 022: others cannot pass reports/ (2750) anyway
    assert lines(settings, names) == []
    os.chmod(report, 0o664)  # written under the Airflow image's umask 0002: analysts could alter it
    assert lines(settings, names) == [f"{report}: expected mode at most 0644, found 0664"]

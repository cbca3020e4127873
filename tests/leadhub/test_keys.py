import os
import stat

import pytest

from leadhub.errors import LeadHubError
from leadhub.keys import MasterKey, create_key_file


def test_key_file_is_created_owner_only_and_never_overwritten(tmp_path):
    path = create_key_file(tmp_path / "k" / "master.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(LeadHubError, match="already exists"):
        create_key_file(path)


def test_refuses_to_run_without_a_key(tmp_path):
    with pytest.raises(LeadHubError, match="no key file"):
        MasterKey.load(tmp_path / "missing.key")


def test_refuses_a_key_readable_by_others(tmp_path):
    path = create_key_file(tmp_path / "master.key")
    os.chmod(path, 0o644)
    with pytest.raises(LeadHubError, match="readable by others"):
        MasterKey.load(path)


def test_subkeys_differ_by_purpose_and_key_id_is_stable(tmp_path):
    key = MasterKey.load(create_key_file(tmp_path / "master.key"))
    assert key.subkey("pseudonym") != key.subkey("archive")
    assert key.key_id == MasterKey.load(tmp_path / "master.key").key_id
    assert key.secret.hex() not in repr(key)

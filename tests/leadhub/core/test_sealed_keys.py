"""The seal subkeys of earlier master keys, kept for intake across rotations: accumulated key by
key, readable with the current key only, never in clear."""

import os
import stat

import pytest

from leadhub.core.errors import LeadHubError
from leadhub.core.keys import MasterKey
from leadhub.core.sealed import (RECORD, carry_seal_keys, drop_old_keyring, earlier_seal_keys, keyring_path,
                                 seal_token, token_function)


def test_two_rotations_keep_both_earlier_seal_keys(settings):
    k1, k2, k3 = (MasterKey(os.urandom(32)) for _ in range(3))
    assert earlier_seal_keys(settings, k1) == {}                      # before any rotation
    assert carry_seal_keys(settings, k1, k2) == 1
    drop_old_keyring(settings, k1)
    assert carry_seal_keys(settings, k2, k3) == 2
    drop_old_keyring(settings, k2)
    assert earlier_seal_keys(settings, k3) == {k1.key_id: k1.subkey("seal"), k2.key_id: k2.subkey("seal")}
    assert not keyring_path(settings, k2).exists()
    # A token made under k1 is recognised under k3 through the carried subkey.
    carried = earlier_seal_keys(settings, k3)[k1.key_id]
    assert token_function(carried, "police", RECORD)("ARR-1") == seal_token(k1, "police", RECORD, "ARR-1")

    blob = keyring_path(settings, k3).read_bytes()
    assert k1.subkey("seal") not in blob and k1.subkey("seal").hex().encode() not in blob
    assert stat.S_IMODE(keyring_path(settings, k3).stat().st_mode) == 0o600


def test_a_finished_rotation_run_again_keeps_every_earlier_key(settings):
    k1, k2, k3 = (MasterKey(os.urandom(32)) for _ in range(3))
    carry_seal_keys(settings, k1, k2)
    carry_seal_keys(settings, k2, k3)
    drop_old_keyring(settings, k2)
    assert carry_seal_keys(settings, k2, k3) == 2                     # k2's file is gone; k3's still names k1


def test_an_edited_or_foreign_keyring_is_refused(settings):
    k1, k2 = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    carry_seal_keys(settings, k1, k2)
    path = keyring_path(settings, k2)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(LeadHubError, match=f"cannot be decrypted with key {k2.key_id}"):
        earlier_seal_keys(settings, k2)

"""Real servers for the pull-connector tests: OpenSSH on 127.0.0.1 (PostgreSQL is in tests/servers.py).

It is started once per test session from the Debian package ``openssh-server``
in a throwaway folder on a free port, and stopped at the end. If the binary is
missing the fixture tries to install it (only as root with apt-get, as in CI);
a test is skipped only when that is impossible, with the reason spelled out.
Nothing here touches a system-wide server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.servers import debian_binary, free_port as _free_port, wait_for_port as _wait_for_port


# --- OpenSSH -----------------------------------------------------------------------

def _ed25519_pair() -> tuple[bytes, str]:
    """(OpenSSH private key bytes, 'ssh-ed25519 AAAA...' public line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def _write_secret(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass
class SshServer:
    port: int
    user: str
    client_key: Path        # the hub's private key
    known_hosts: Path       # pins the server's real host key
    wrong_known_hosts: Path  # pins some other key for 127.0.0.1:port
    host_public: str
    base: Path

    def new_remote_dir(self, name: str) -> Path:
        d = self.base / "remote" / name
        d.mkdir(parents=True)
        return d


@pytest.fixture(scope="session")
def ssh_server():
    """OpenSSH's sshd on 127.0.0.1: key authentication only, internal SFTP, for the current user."""
    sshd = debian_binary("sshd", "/usr/sbin/sshd", "openssh-server")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege-separation folder
    user = pwd.getpwuid(os.geteuid()).pw_name
    base = Path(tempfile.mkdtemp(prefix="leadhub-sshd-"))
    host_private, host_public = _ed25519_pair()
    client_private, client_public = _ed25519_pair()
    _, other_public = _ed25519_pair()
    _write_secret(base / "host_ed25519", host_private)
    client_key = _write_secret(base / "client_ed25519", client_private)
    (base / "authorized_keys").write_text(client_public + "\n")
    port = _free_port()
    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    wrong = base / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {other_public}\n")
    config = base / "sshd_config"
    config.write_text(f"""ListenAddress 127.0.0.1
HostKey {base / 'host_ed25519'}
PidFile {base / 'sshd.pid'}
AuthorizedKeysFile {base / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowUsers {user}
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    log = open(base / "sshd.log", "wb")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config), "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield SshServer(port, user, client_key, known_hosts, wrong, host_public, base)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)

"""Real servers for the pull-connector tests: PostgreSQL and OpenSSH on 127.0.0.1.

Both are started once per test session from the Debian packages (``postgresql``,
``openssh-server``) in throwaway folders on a free port, and stopped at the end.
If the binaries are missing the fixtures try to install them (only as root with
apt-get, as in CI); a test is skipped only when that is impossible, with the
reason spelled out. Nothing here touches a system-wide server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

PG_ADMIN = "leadhub_admin"
STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen | None = None) -> None:
    """Wait until a freshly started server accepts connections (startup only, never asserted on)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {STARTUP_SECONDS} s")


def _apt_install(package: str) -> bool:
    """Install a Debian package when we may (root with apt-get); False when we cannot."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    return subprocess.run(cmd, env=env, capture_output=True).returncode == 0


# --- PostgreSQL ------------------------------------------------------------------

def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


@dataclass
class PgServer:
    port: int
    admin_password: str

    def url(self, database: str, user: str = PG_ADMIN, password: str | None = None) -> str:
        password = self.admin_password if password is None else password
        return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL cluster on 127.0.0.1 with password (scram) logins over TCP."""
    bindir = _pg_bindir()
    if bindir is None and _apt_install("postgresql"):
        bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not in /usr/lib/postgresql/*/bin and cannot be "
                    "installed here (needs root and apt-get); run .ci/run or apt-get install postgresql")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root: run them as the packaged 'postgres' user.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            owner = pwd.getpwnam("postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="leadhub-pg-"))
    data, log = base / "data", base / "server.log"
    password = "admin-test-password"
    (base / "pw").write_text(password + "\n")
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        os.chown(base / "pw", owner.pw_uid, owner.pw_gid)
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", PG_ADMIN, "-E", "UTF8",
                    "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
                    f"--pwfile={base / 'pw'}"], check=True, capture_output=True)
    port = _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-o", options, "start"], check=True, capture_output=True)
    try:
        _wait_for_port(port)
        yield PgServer(port, password)
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


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
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) and _apt_install("openssh-server"):
        sshd = "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        pytest.skip("OpenSSH server (/usr/sbin/sshd) is absent and cannot be installed here "
                    "(needs root and apt-get); run .ci/run or apt-get install openssh-server")
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

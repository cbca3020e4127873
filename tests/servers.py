"""Real servers on 127.0.0.1 for tests in any folder: PostgreSQL and Redis; and ending a server
(an Airflow component) with everything it started.

Each is started once per test session from its Debian package (``postgresql``,
``redis-server``) in a throwaway folder on a free port, and stopped at the end.
If the binaries are missing the fixtures try to install them (only as root with
apt-get, as in CI); a test is skipped only when that is impossible, with the
reason spelled out. Nothing here touches a system-wide server.
``tests/conftest.py`` makes the fixtures visible everywhere.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

PG_ADMIN = "leadhub_admin"
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None) -> None:
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


def apt_install(package: str) -> bool:
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

def debian_binary(command: str, path: str, package: str) -> str:
    """The server program ``command`` (on PATH, else at ``path``), installed from its Debian
    ``package`` when missing and possible; else the test is skipped with the reason."""
    binary = shutil.which(command) or path
    if not os.path.exists(binary) and apt_install(package):
        binary = path
    if not os.path.exists(binary):
        pytest.skip(f"{package} ({path}) is absent and cannot be installed here "
                    f"(needs root and apt-get); run .ci/run or apt-get install {package}")
    return binary


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
    if bindir is None and apt_install("postgresql"):
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
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-o", options, "start"], check=True, capture_output=True)
    try:
        wait_for_port(port)
        yield PgServer(port, password)
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# --- Redis -------------------------------------------------------------------------

@dataclass
class RedisServer:
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="session")
def redis_server():
    """Redis on 127.0.0.1 (Debian's redis-server), nothing persisted: a Celery broker for one session."""
    binary = debian_binary("redis-server", "/usr/bin/redis-server", "redis-server")
    base = Path(tempfile.mkdtemp(prefix="leadhub-redis-"))
    port = free_port()
    log = open(base / "redis.log", "wb")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield RedisServer(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def kill_process_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session``, its whole process group and every
    descendant that left it (Airflow's task processes run in sessions of their own), as when
    its host goes down; then wait for them all."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)
    process.wait()

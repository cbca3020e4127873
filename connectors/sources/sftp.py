"""Fetch new extract files from an agency SFTP server into the agency inbox.

A ``kind: sftp`` source names a server, a user, a private key (the path is
read from an environment variable, so no deployment secret sits in the
repository), a pinned host key (a known_hosts file: an unknown or changed
host key is refused, never accepted on first use) and a remote folder.

Each run lists the folder and fetches every regular file whose name matches
one of the agency's contracts and that was not fetched before in the same
size and modification time. A file is downloaded to ``<name>.part`` in the
inbox, its size checked against the listing and the remote file re-checked
for growth, then fsynced and renamed: the intake never sees half a file.
What was fetched (name, size, mtime, SHA-256) is kept in the source's state
file, written after the rename, so a crash in between only causes a second,
identical copy that the intake records as a ``duplicate``.

Remote files stay where they are unless ``delete_after_fetch: true``, and then
they are removed only after the local copy and the state are durable. Names
still being uploaded (``.part``, ``.tmp``, ...) and names no contract knows
are left alone and counted, never fetched: the hub takes only what it can
account for. A file replaced on the server under the same name (a corrected
re-send) is fetched again; the intake then supersedes the earlier delivery.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import socket
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import paramiko

from leadhub.core.contracts import contract_for_file
from connectors.inbox_files import SAFE_NAME, is_in_progress
from connectors.sources import (PullError, PullResult, SftpDeclaration, Source, deliver, load_state, open_part,
                                save_state)
from leadhub.core.settings import Settings

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SftpSource:
    name: str
    agency: str
    host: str
    port: int
    user: str
    private_key_env: str
    passphrase_env: str | None
    known_hosts: Path
    remote_dir: str
    delete_after_fetch: bool
    timeout_seconds: float

    @classmethod
    def from_source(cls, source: Source) -> "SftpSource":
        o: SftpDeclaration = source.declaration
        for required in ("host", "user", "private_key_env", "known_hosts", "remote_dir"):
            if not getattr(o, required):
                raise PullError(f"{source.where}: {required} is required")
        return cls(source.name, source.agency, o.host, o.port, o.user, o.private_key_env, o.passphrase_env,
                   Path(os.path.expandvars(o.known_hosts)).expanduser(), o.remote_dir,
                   o.delete_after_fetch, o.timeout_seconds)


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Pinned host keys only: a host missing from known_hosts is refused, not trusted on first use."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(hostname)


class _UnknownHostKey(paramiko.SSHException):
    pass


def connect(src: SftpSource) -> paramiko.SSHClient:
    """An SSH connection with key authentication and a pinned host key; PullError otherwise."""
    where = f"source {src.name}"
    key_path = os.environ.get(src.private_key_env)
    if not key_path:
        raise PullError(f"{where}: environment variable {src.private_key_env} (the private key path) is not set")
    passphrase = os.environ.get(src.passphrase_env) if src.passphrase_env else None
    try:
        pkey = paramiko.PKey.from_path(Path(key_path).expanduser(), passphrase)
    except (OSError, paramiko.SSHException, ValueError) as e:
        raise PullError(f"{where}: cannot read the private key named by {src.private_key_env} "
                        f"({type(e).__name__})") from None
    if not src.known_hosts.is_file():
        raise PullError(f"{where}: known_hosts file {src.known_hosts} does not exist; "
                        "pin the server's host key there first")
    client = paramiko.SSHClient()
    client.load_host_keys(str(src.known_hosts))
    client.set_missing_host_key_policy(_RefuseUnknownHost())
    address = f"{src.host}:{src.port}"
    try:
        client.connect(src.host, port=src.port, username=src.user, pkey=pkey, allow_agent=False,
                       look_for_keys=False, timeout=src.timeout_seconds,
                       banner_timeout=src.timeout_seconds, auth_timeout=src.timeout_seconds)
    except _UnknownHostKey:
        client.close()
        raise PullError(f"{where}: the host key of {address} is not in {src.known_hosts}; "
                        "refusing to connect") from None
    except paramiko.BadHostKeyException:
        client.close()
        raise PullError(f"{where}: the host key of {address} does not match {src.known_hosts}; "
                        "refusing to connect (the server changed, or someone is in between)") from None
    except paramiko.AuthenticationException:
        client.close()
        raise PullError(f"{where}: {address} refused key authentication for user {src.user}") from None
    except (OSError, socket.timeout, paramiko.SSHException) as e:
        client.close()
        raise PullError(f"{where}: cannot connect to {address} ({type(e).__name__})") from None
    return client


def _fetch(sftp: paramiko.SFTPClient, remote: str, attr, part: Path) -> tuple[str, int] | None:
    """Download one file to ``part``; its (sha256, size), or None if it changed while read."""
    h, size = hashlib.sha256(), 0
    with sftp.open(remote, "rb") as rf, open_part(part) as lf:
        rf.prefetch(attr.st_size)
        while chunk := rf.read(CHUNK_BYTES):
            lf.write(chunk)
            h.update(chunk)
            size += len(chunk)
        lf.flush()
        os.fsync(lf.fileno())
    after = sftp.stat(remote)
    if size != attr.st_size or (after.st_size, after.st_mtime) != (attr.st_size, attr.st_mtime):
        return None
    return h.hexdigest(), size


def pull_sftp(settings: Settings, source: Source) -> PullResult:
    """Fetch new files from the source's remote folder; see the module docstring."""
    src = SftpSource.from_source(source)
    where = f"source {src.name}"
    state = load_state(settings, src.name)
    fetched: dict = state.setdefault("fetched", {})
    state["kind"] = "sftp"
    inbox = settings.inbox(src.agency)
    inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = PullResult(src.name, "sftp", src.agency)
    part: Path | None = None
    client = connect(src)
    try:
        sftp = client.open_sftp()
        try:
            entries = sftp.listdir_attr(src.remote_dir)
        except OSError as e:
            raise PullError(f"{where}: cannot list remote folder {src.remote_dir} "
                            f"({e.strerror or type(e).__name__})") from None
        for attr in sorted(entries, key=lambda a: (a.st_mtime or 0, a.filename)):
            name = attr.filename
            seen = fetched.get(name)
            if (not stat.S_ISREG(attr.st_mode or 0) or is_in_progress(name) or not SAFE_NAME.fullmatch(name)
                    or contract_for_file(src.agency, name) is None
                    or (seen and (seen["size"], seen["mtime"]) == (attr.st_size, attr.st_mtime))):
                result.skipped += 1
                continue
            if os.path.lexists(inbox / name):
                # An earlier copy still waits for the intake; replacing it would lose it.
                result.skipped += 1
                log.info("%s: %s still waits in the inbox; fetched after the intake took it", where, name)
                continue
            remote = posixpath.join(src.remote_dir, name)
            part = inbox / f"{name}.part"
            got = _fetch(sftp, remote, attr, part)
            if got is None:
                part.unlink(missing_ok=True)
                part = None
                result.skipped += 1
                log.info("%s: %s changed while being fetched; left for the next run", where, name)
                continue
            sha, size = got
            deliver(part, inbox / name)
            part = None
            fetched[name] = {"size": size, "mtime": attr.st_mtime, "sha256": sha,
                             "fetched_at": datetime.now(timezone.utc).isoformat()}
            save_state(settings, src.name, state)
            result.files.append(name)
            log.info("%s: fetched %s (%d bytes)", where, name, size)
            if src.delete_after_fetch:
                # Only now: the local copy is fsynced and renamed, and the state records it.
                sftp.remove(remote)
                fetched[name]["deleted_on_server"] = True
                save_state(settings, src.name, state)
        if not result.files:
            save_state(settings, src.name, state)   # records when the source was last reached
    except (OSError, paramiko.SSHException) as e:
        raise PullError(f"{where}: transfer failed after {len(result.files)} file(s) "
                        f"({type(e).__name__}{': ' + e.strerror if getattr(e, 'strerror', None) else ''})") from None
    finally:
        if part is not None:
            part.unlink(missing_ok=True)
        client.close()
    return result

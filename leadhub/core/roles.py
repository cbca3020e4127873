"""Who may touch what on the host: the hub's roles as owners, groups and modes.

Four roles, one map. The **steward** is the hub's service user: it owns every
path below and alone reads the key, archive, quarantine, warehouse, state and
the steward folder (crosswalk, audit log). **Analysts** (one group) read only
the published snapshot and the reports. Each **agency uploader** (one group per
agency) writes only its own inbox. The **operator** runs the host (starts the
stack, backs up volumes, runs ``leadhub doctor``) and is given no data group.

``ROLES`` is the map, declared once as data; ``check`` compares an installation
with it and returns one deviation per path and problem; ``fix`` narrows modes
that are wider than the map allows (it never widens one and never changes an
owner, which takes root and a decision).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from leadhub.core.audit import steward_dir
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings

ENV_STEWARD_USER = "LEADHUB_STEWARD_USER"
ENV_ANALYST_GROUP = "LEADHUB_ANALYST_GROUP"
ENV_AGENCY_GROUP_PREFIX = "LEADHUB_AGENCY_GROUP_PREFIX"
ENV_AGENCY_GROUPS = "LEADHUB_AGENCY_GROUPS"
DEFAULT_ANALYST_GROUP = "leadhub-analysts"
DEFAULT_AGENCY_GROUP_PREFIX = "leadhub-"

STEWARD, ANALYSTS, AGENCY = "steward", "analysts", "agency"


@dataclass(frozen=True)
class Rule:
    """One path of the map.

    ``mode`` is the widest the path may be; ``needs`` the bits its role cannot
    work without (a snapshot analysts cannot read is as wrong as one everyone
    can). ``group`` names whose group the path must carry (None: any group,
    because ``mode`` gives the group nothing). ``contents`` is the widest any
    file or folder below may be (None: not walked). ``required`` paths must
    exist; the others appear on first use.
    """
    path: str
    role: str
    mode: int
    needs: int
    group: str | None = None
    contents: int | None = None
    required: bool = True
    # A folder others only pass through gives root nothing it lacks: an image may make it root's.
    root_may_own: bool = False


# Paths are relative to the data directory; "{agency}" repeats for every agency
# with contracts; "<key>" is the master key file, which lives outside it.
# The data directory and inbox/ are 0711: every role passes through to its own
# folder, no one else lists them.
ROLES: tuple[Rule, ...] = (
    Rule(".", STEWARD, 0o711, 0o700, root_may_own=True),
    Rule("inbox", STEWARD, 0o711, 0o700, root_may_own=True),
    # setgid so uploads take the agency's group; the steward (a member of every
    # agency group) reads and moves them; nobody else reaches them. Uploads keep
    # the upload server's umask (often 022): the folder, not the file, shuts others out.
    Rule("inbox/{agency}", AGENCY, 0o2770, 0o2770, group=AGENCY, contents=0o2775),
    Rule("archive", STEWARD, 0o700, 0o700, contents=0o700),
    Rule("quarantine", STEWARD, 0o700, 0o700, contents=0o700),
    Rule("warehouse", STEWARD, 0o700, 0o700, contents=0o700),
    Rule("state", STEWARD, 0o700, 0o700, contents=0o700, required=False),
    Rule("steward", STEWARD, 0o700, 0o700, contents=0o700, required=False),
    Rule("work", STEWARD, 0o700, 0o700, contents=0o700, required=False),  # decrypted drops in flight
    Rule("linkage", STEWARD, 0o700, 0o700, contents=0o700, required=False),
    Rule("docs", STEWARD, 0o700, 0o700, contents=0o700, required=False),
    # setgid so every snapshot and report the hub writes takes the analysts' group. As in the
    # inboxes, the folder shuts others out; what matters below is that analysts cannot write.
    Rule("published", ANALYSTS, 0o2750, 0o2750, group=ANALYSTS, contents=0o2755, required=False),
    Rule("reports", ANALYSTS, 0o2750, 0o2750, group=ANALYSTS, contents=0o2755),
    Rule("<key>", STEWARD, 0o600, 0o400),
)


@dataclass(frozen=True)
class Names:
    """The host's names for the roles; each can be set by an environment variable.

    A name may also be a numeric id: containers often run as a uid with no name.
    """
    steward: str
    analysts: str = DEFAULT_ANALYST_GROUP
    agency_prefix: str = DEFAULT_AGENCY_GROUP_PREFIX
    # Agencies whose group is not <prefix><agency>, e.g. {"police": "51001"} in a container.
    agency_groups: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls) -> "Names":
        """``LEADHUB_STEWARD_USER`` (default: the user running the command) and the group names.

        ``LEADHUB_AGENCY_GROUPS`` lists exceptions to the prefix, "police=51001,jail=51003".
        """
        pairs = [p.split("=", 1) for p in os.environ.get(ENV_AGENCY_GROUPS, "").replace(" ", ",").split(",") if p]
        if any(len(p) != 2 or not all(p) for p in pairs):
            raise LeadHubError(f"{ENV_AGENCY_GROUPS} must be agency=group pairs separated by commas")
        return cls(steward=os.environ.get(ENV_STEWARD_USER) or _user(os.geteuid()),
                   analysts=os.environ.get(ENV_ANALYST_GROUP) or DEFAULT_ANALYST_GROUP,
                   agency_prefix=os.environ.get(ENV_AGENCY_GROUP_PREFIX) or DEFAULT_AGENCY_GROUP_PREFIX,
                   agency_groups=tuple((a, g) for a, g in pairs))

    def group(self, role: str, agency: str | None = None) -> str:
        if role == ANALYSTS:
            return self.analysts
        return dict(self.agency_groups).get(agency) or f"{self.agency_prefix}{agency}"


@dataclass(frozen=True)
class Deviation:
    path: Path
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class Target:
    """A rule applied to one concrete path (one per agency for the inbox rule)."""
    rule: Rule
    path: Path
    group: str | None


def targets(settings: Settings, agencies: list[str], names: Names) -> list[Target]:
    out = []
    for rule in ROLES:
        for agency in (agencies if "{agency}" in rule.path else [None]):
            if rule.path == "<key>":
                path = settings.key_file
            elif rule.path == "steward":
                path = steward_dir(settings)
            else:
                path = settings.data_dir / rule.path.format(agency=agency)
            group = names.group(rule.group, agency) if rule.group else None
            out.append(Target(rule, path, group))
    return out


def _mode(st: os.stat_result) -> int:
    return stat.S_IMODE(st.st_mode)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _below(path: Path) -> Iterator[Path]:
    """Everything under ``path``, not following links (a link's own mode means nothing)."""
    for root, dirs, files in os.walk(path):
        for name in sorted(dirs) + sorted(files):
            yield Path(root) / name


def _check_one(t: Target, names: Names) -> list[Deviation]:
    try:
        st = os.lstat(t.path)
    except FileNotFoundError:
        return [Deviation(t.path, "present", "missing")] if t.rule.required else []
    found: list[Deviation] = []
    mode = _mode(st)
    if stat.S_ISLNK(st.st_mode):
        return [Deviation(t.path, "a real file or folder", "a symbolic link")]
    if mode & ~t.rule.mode or ~mode & t.rule.needs:
        found.append(Deviation(t.path, f"mode {t.rule.mode:04o}", f"{mode:04o}"))
    if names.steward not in (_user(st.st_uid), str(st.st_uid)) and not (t.rule.root_may_own and st.st_uid == 0):
        found.append(Deviation(t.path, f"owner {names.steward}", _user(st.st_uid)))
    if t.group and t.group not in (_group(st.st_gid), str(st.st_gid)):
        found.append(Deviation(t.path, f"group {t.group}", _group(st.st_gid)))
    if t.rule.contents is not None and stat.S_ISDIR(st.st_mode):
        for below in _below(t.path):
            try:
                inner = os.lstat(below)
            except FileNotFoundError:  # removed while walking
                continue
            if stat.S_ISLNK(inner.st_mode):
                continue
            # Folders below may keep their x bits; files may have at most rw of the allowed bits.
            allowed = t.rule.contents if stat.S_ISDIR(inner.st_mode) else t.rule.contents & 0o666
            if _mode(inner) & ~allowed:
                found.append(Deviation(below, f"mode at most {allowed:04o}", f"{_mode(inner):04o}"))
            # What the hub writes is the steward's; only an inbox holds files of another user (uploads).
            if t.rule.role != AGENCY and names.steward not in (_user(inner.st_uid), str(inner.st_uid)):
                found.append(Deviation(below, f"owner {names.steward}", _user(inner.st_uid)))
    return found


def check(settings: Settings, agencies: list[str], names: Names) -> list[Deviation]:
    """Every way the installation differs from ``ROLES``, in map order."""
    return [d for t in targets(settings, agencies, names) for d in _check_one(t, names)]


def fix(settings: Settings, agencies: list[str], names: Names) -> list[Path]:
    """Narrow every mode wider than the map allows; returns the paths changed.

    Only removes bits: a missing bit (e.g. analysts' read on the snapshot) may
    need a group set first, and owners and groups need root; those remain for
    ``check`` to name.
    """
    changed = []
    for t in targets(settings, agencies, names):
        paths = [t.path]
        if t.rule.contents is not None and t.path.is_dir() and not t.path.is_symlink():
            paths += list(_below(t.path))
        for i, path in enumerate(paths):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if i == 0:
                allowed = t.rule.mode
            else:
                allowed = t.rule.contents if stat.S_ISDIR(st.st_mode) else t.rule.contents & 0o666
            if _mode(st) & ~allowed:
                try:
                    os.chmod(path, _mode(st) & allowed)
                except OSError:  # not ours, or a read-only mount (a container's secret): check names it
                    continue
                changed.append(path)
    return changed

"""docker-compose.yml and its image, checked statically (no container engine here or in CI).

Catches what would otherwise surface only on the deployment host: a floating
image tag, a mounted file missing from the repository, a secret written inline,
a variable .env.example forgets, an agency without an inbox.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from leadhub.core.contracts import agencies
from leadhub.core.deployment import (
    CELERY_SETTINGS, WAREHOUSE_POOL, WAREHOUSE_POOL_SLOTS, WAREHOUSE_QUEUE, WAREHOUSE_WORKER_SETTINGS, WORKER_QUEUES,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
DATA_DIR = "/opt/leadhub/data"
KEY_SECRET = "leadhub_master_key"
# The worker that runs everything opening the warehouse, and so holds the data volumes and the key.
WAREHOUSE_WORKER = next(name for name, queue in WORKER_QUEUES.items() if queue == WAREHOUSE_QUEUE)

REQUIRED_SERVICES = {"postgres", "redis", "sftp", "airflow-apiserver", "airflow-scheduler",
                     "airflow-dag-processor", "airflow-triggerer", "airflow-init", *WORKER_QUEUES}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|^SFTP_USERS$")
# ${VAR}, ${VAR:-default}, ${VAR:?message}; "$${...}" is an escaped dollar for the container's shell.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
URL_CREDENTIALS = re.compile(r"://[^:/@\s]*:(\$\{[^}]*\}|[^@\s]*)@")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def volume_mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            mounts.append((str(v.get("source", "")), str(v["target"])))
        else:
            source, _, rest = str(v).partition(":")
            mounts.append((source, rest.split(":")[0]))
    return mounts


def git_ignored(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path.relative_to(ROOT))],
                          capture_output=True)
    return done.returncode == 0


def test_required_services_are_present(services):
    assert REQUIRED_SERVICES <= set(services)


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image (a built service still names its tag)"
        if "@sha256:" in image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} floats"


def test_built_image_is_the_official_airflow_image_of_the_pinned_version(services):
    airflow_pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                       if d.startswith("apache-airflow=="))
    version = airflow_pin.split("==")[1]
    builds = {name: s["build"] for name, s in services.items() if "build" in s}
    assert set(builds) >= {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                           "airflow-triggerer", "airflow-init", *WORKER_QUEUES}
    for name, build in builds.items():
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        text = dockerfile.read_text()
        assert re.search(rf"^FROM apache/airflow:{re.escape(version)}-python3\.11\s*$", text, re.M), dockerfile
        assert "--constraint /opt/leadhub/constraints.txt" in text


def test_everything_the_dockerfile_copies_exists(services):
    dockerfile = ROOT / "docker" / "Dockerfile"
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY"):
            sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_bind_mounts_and_files_exist_or_are_ignored_secrets(compose, services):
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, target in volume_mounts(service):
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in named, f"{name} mounts undeclared volume {source}"
        for env_file in service.get("env_file") or []:
            env_file = env_file["path"] if isinstance(env_file, dict) else env_file
            assert (ROOT / env_file).exists() or git_ignored(ROOT / env_file), f"{name}: {env_file}"
    for secret_name, secret in (compose.get("secrets") or {}).items():
        path = ROOT / secret["file"]
        assert path.exists() or git_ignored(path), f"secret {secret_name}: {path} would be committed"


def test_no_secret_is_written_inline(services):
    for name, service in services.items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                assert VARIABLE.fullmatch(value), f"{name}.{key} must come from a ${{VAR}} reference"
            for password in URL_CREDENTIALS.findall(value):
                assert password == "" or VARIABLE.fullmatch(password), f"{name}.{key} has an inline password"


def test_env_example_lists_every_variable_and_holds_no_secret():
    compose_text = COMPOSE.read_text()
    used = {m.group(1) for m in VARIABLE.finditer(compose_text)}
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert used - set(example) == set(), "add these to docker/.env.example"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value.strip("'\"") == "", f".env.example must not ship a value for {key}"


def test_every_agency_has_an_sftp_upload_folder_that_is_its_workers_inbox(services):
    sftp = dict(volume_mounts(services["sftp"]))
    for name in WORKER_QUEUES:  # the warehouse worker takes deliveries in; the default one pulls them
        worker = {target: source for source, target in volume_mounts(services[name])}
        for agency in agencies():
            volume = worker.get(f"{DATA_DIR}/inbox/{agency}")
            assert volume, f"{name} does not mount an inbox for {agency}"
            assert sftp.get(volume) == f"/home/{agency}/upload", f"{agency}'s inbox is not its SFTP upload folder"


def test_warehouse_worker_has_the_key_as_a_secret_and_its_data_volumes(services):
    worker = services[WAREHOUSE_WORKER]
    env = env_of(worker)
    assert KEY_SECRET in worker.get("secrets", [])
    assert env["LEADHUB_KEY_FILE"] == f"/run/secrets/{KEY_SECRET}"
    assert env["LEADHUB_DATA_DIR"] == DATA_DIR
    targets = {target for _, target in volume_mounts(worker)}
    for sub in ("archive", "quarantine", "warehouse", "reports", "published"):
        assert f"{DATA_DIR}/{sub}" in targets
    others = [n for n, s in services.items() if KEY_SECRET in (s.get("secrets") or [])]
    assert others == [WAREHOUSE_WORKER], "only the warehouse worker, which runs the pipeline, needs the key"


def test_init_creates_the_warehouse_pool(services):
    command = " ".join(services["airflow-init"]["command"])
    assert f"airflow pools set {WAREHOUSE_POOL} {WAREHOUSE_POOL_SLOTS} " in command


def test_triggerer_watches_the_same_inboxes_read_only_and_every_component_agrees_on_the_path(services):
    worker = {target: source for source, target in volume_mounts(services[WAREHOUSE_WORKER])}
    raw = services["airflow-triggerer"]["volumes"]
    for agency in agencies():
        target = f"{DATA_DIR}/inbox/{agency}"
        assert f"{worker[target]}:{target}:ro" in raw, f"the triggerer does not watch {agency}'s inbox read-only"
    for name, service in services.items():
        if name.startswith("airflow-"):
            assert env_of(service).get("LEADHUB_DATA_DIR") == DATA_DIR, name
    assert KEY_SECRET not in (services["airflow-triggerer"].get("secrets") or [])


def test_pull_state_survives_a_container_rebuild(services):
    for name in WORKER_QUEUES:  # pulls run on the default worker; backups are taken on the warehouse host
        targets = {target for _, target in volume_mounts(services[name])}
        assert f"{DATA_DIR}/state" in targets, name


# Roles on the host: the stack must set up what `leadhub doctor` checks (leadhub/core/roles.py).

def interpolate(text: str, env: dict[str, str]) -> str:
    """What compose makes of a value: ${VAR:-default} from env or its default, then $$ -> $."""
    def value(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3)
        return env.get(name) or (default if op and op.endswith("-") else "")
    return VARIABLE.sub(value, text).replace("$$", "$")


def test_every_agency_has_a_group_that_the_inbox_readers_join(services):
    common = env_of(services[WAREHOUSE_WORKER])
    groups = dict(pair.split("=", 1) for pair in interpolate(common["LEADHUB_AGENCY_GROUPS"], {}).split(","))
    assert set(groups) == set(agencies())
    assert len(set(groups.values())) == len(groups), "two agencies share a group: each could read the other's inbox"
    assert interpolate(common["LEADHUB_ANALYST_GROUP"], {}) not in groups.values()
    readers = {*WORKER_QUEUES, "airflow-triggerer"}
    for name in readers:
        joined = {interpolate(g, {}) for g in services[name].get("group_add") or []}
        assert joined == set(groups.values()), f"{name} must join every agency's group, and no other"
    for name in set(services) - readers:
        assert not services[name].get("group_add"), f"{name} has no business in an agency's group"
    # Every service that can read a file sees the same names the roles map is checked with.
    for name, service in services.items():
        if name.startswith("airflow-"):
            assert env_of(service)["LEADHUB_STEWARD_USER"] == "${AIRFLOW_UID:-50000}", name


def test_sftp_starts_after_init_has_set_the_inboxes_up(services):
    assert services["sftp"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_script_sets_up_an_install_that_doctor_finds_clean(services, tmp_path):
    """Run the roles part of airflow-init's script on a folder, then check it against the map."""
    import os
    import shutil

    from leadhub.core.keys import create_key_file
    from leadhub.core.roles import Names, check
    from leadhub.core.settings import Settings

    if os.geteuid() != 0:
        pytest.skip("chgrp to the agencies' groups needs root")
    init = services["airflow-init"]
    env = {"AIRFLOW_UID": str(os.geteuid())}
    script = interpolate(init["command"][1], env)
    script = "\n".join(line for line in script.splitlines() if "/entrypoint" not in line)
    data = tmp_path / "data"
    script = script.replace("/opt/leadhub/data", str(data)).replace("/opt/airflow/logs", str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()
    # A delivery already waiting, uploaded under umask 022, and a leftover too-open archive file.
    (data / "inbox" / "police").mkdir(parents=True)
    (data / "inbox" / "police" / "arrests.csv").write_text("x")
    (data / "archive").mkdir()
    (data / "archive" / "old.enc").write_text("x")
    os.chmod(data / "archive" / "old.enc", 0o644)
    container_env = {k: interpolate(v, env) for k, v in env_of(init).items() if k.startswith("LEADHUB_")}
    done = subprocess.run([shutil.which("bash"), "-c", script], env={**os.environ, **env, **container_env},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    key = tmp_path / "secrets" / "leadhub_master.key"
    create_key_file(key)
    names = Names(steward=container_env["LEADHUB_STEWARD_USER"], analysts=container_env["LEADHUB_ANALYST_GROUP"],
                  agency_groups=tuple(tuple(p.split("=", 1)) for p in container_env["LEADHUB_AGENCY_GROUPS"].split(",")))
    assert [str(d) for d in check(Settings(data_dir=data, key_file=key), agencies(), names)] == []


def test_the_workers_write_with_umask_0027_not_the_images_0002(services):
    # Airflow's entrypoint sets umask 0002; snapshots and reports would come out group-writable.
    for name in WORKER_QUEUES:
        command = services[name]["command"]
        assert command[:2] == ["bash", "-c"]
        assert re.fullmatch(r"umask 0027 && exec airflow celery worker( --\S+ \S+)*", command[2]), name


def test_the_image_makes_the_folders_above_the_volumes_pass_through_only():
    # Volumes mount below /opt/leadhub/data/inbox; the folders above them come from the image.
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^RUN mkdir -p {DATA_DIR}/inbox && chmod 0711 {DATA_DIR} {DATA_DIR}/inbox$", text, re.M)


def test_every_folder_of_the_roles_map_is_a_volume_of_the_worker(services):
    """Anything the hub keeps must outlive the container; the folders above the volumes hold nothing."""
    from leadhub.core.roles import ROLES

    worker = {target for _, target in volume_mounts(services[WAREHOUSE_WORKER])}
    init = {target for _, target in volume_mounts(services["airflow-init"])}
    for rule in ROLES:
        if rule.path in (".", "inbox", "<key>"):
            continue
        for agency in (agencies() if "{agency}" in rule.path else [None]):
            target = f"{DATA_DIR}/{rule.path.format(agency=agency)}"
            assert target in worker, f"the worker keeps {rule.path} in its container layer, not a volume"
            assert target in init, f"airflow-init cannot set up {rule.path}"


# The executor: compose runs the layout leadhub/core/deployment.py declares and the Celery test proves.

def worker_options(command: str) -> dict[str, str]:
    """``--option value`` pairs of an ``airflow celery worker`` command line."""
    words = command.split("airflow celery worker", 1)[1].split()
    return dict(zip(words[::2], words[1::2]))


def test_every_airflow_service_has_the_declared_executor_settings(services):
    for name, service in services.items():
        if name.startswith("airflow-") or name == "flower":
            env = env_of(service)
            assert {k: env.get(k) for k in CELERY_SETTINGS} == CELERY_SETTINGS, name


def test_one_worker_per_declared_queue_and_no_other(services):
    from tests.dags.test_celery_executor import worker_args

    workers = {n for n, s in services.items() if "celery worker" in " ".join(map(str, s.get("command") or []))}
    assert workers == set(WORKER_QUEUES)
    for name, queue in WORKER_QUEUES.items():
        options = worker_options(services[name]["command"][2])
        tested = worker_options("airflow celery worker " + " ".join(worker_args(queue)[2:]))
        assert options["--queues"] == tested["--queues"] == queue, name
        if queue == WAREHOUSE_QUEUE:  # one writer: the same process count and pool as in the test
            assert options["--concurrency"] == tested["--concurrency"] == "1"
            env = env_of(services[name])
            assert {k: env.get(k) for k in WAREHOUSE_WORKER_SETTINGS} == WAREHOUSE_WORKER_SETTINGS


def test_only_the_warehouse_worker_and_init_mount_the_warehouse_and_archive(services):
    for name, service in services.items():
        targets = {target for _, target in volume_mounts(service)}
        for sub in ("warehouse", "archive", "steward"):
            if f"{DATA_DIR}/{sub}" in targets:
                assert name in (WAREHOUSE_WORKER, "airflow-init"), f"{name} mounts {sub}"


def test_the_celery_test_runs_the_declared_executor_settings(tmp_path):
    from leadhub.core.settings import Settings
    from tests.dags.test_celery_executor import cluster_env

    env = cluster_env(tmp_path, "postgresql+psycopg2://u:p@127.0.0.1:5432/airflow", "redis://127.0.0.1:6379/0",
                      8080, Settings(data_dir=tmp_path / "data", key_file=tmp_path / "key"))
    assert {k: env[k] for k in CELERY_SETTINGS} == CELERY_SETTINGS

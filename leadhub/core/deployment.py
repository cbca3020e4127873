"""How Airflow's distributed executor is laid out over hosts: pool, queues, Celery settings.

One declaration read by the DAGs (which task goes to which queue), by
``leadhub airflow`` (the pool it creates) and by the Celery test, and checked
against ``docker-compose.yml`` by ``tests/dags/test_docker_compose.py``, so the
compose file runs exactly the layout the test proves.

DuckDB lets one process write the warehouse file, and it must be a local file
(file locks over a network share are not to be trusted). So every task that
opens the warehouse is routed to the ``warehouse`` queue, which only workers on
the host holding the data directory serve, and takes the one slot of the
warehouse pool, so two such tasks never overlap even when that host runs more
than one worker. Everything else (pulls, checks of a summary) goes to the
default queue, served by any worker.
"""

from __future__ import annotations

WAREHOUSE_POOL = "leadhub_warehouse"
WAREHOUSE_POOL_SLOTS = 1
WAREHOUSE_POOL_DESCRIPTION = "One task at a time may open the DuckDB warehouse"

DEFAULT_QUEUE = "default"
WAREHOUSE_QUEUE = "warehouse"

# The compose service of each kind of worker and the one queue it serves.
WORKER_QUEUES = {
    "airflow-worker": DEFAULT_QUEUE,
    "airflow-worker-warehouse": WAREHOUSE_QUEUE,
}

# Settings every Airflow component of a Celery deployment shares (docker-compose.yml's
# common environment carries each of them with this value). The broker, result backend
# and database URLs hold passwords and differ per deployment, so they are not here.
CELERY_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    # A task declares no queue unless it opens the warehouse: it lands here.
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
    # A worker reserves no task beyond those it runs: a task queued behind a long ingest
    # on one worker is taken by another worker of its queue instead of waiting.
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    # A message is acknowledged when its task ends, not when it starts, so a worker that
    # dies mid-task leaves it to the scheduler, which fails the attempt and retries it.
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    # Redis hands a task nobody acknowledged to another worker after this many seconds:
    # longer than any task (a decade of history loads in well under a day).
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
}

# Worker processes (Celery's --concurrency) of a warehouse worker: one writer at a time.
WAREHOUSE_WORKER_CONCURRENCY = 1

# The warehouse worker's own settings. Celery's default pool (prefork) runs each task under a
# daemonic pool process, and Python lets no process forked from one start a process of its own:
# intake validates in a process of its own, so under prefork every delivery would be quarantined
# ("unexpected AssertionError"). The solo pool runs the one task from the worker's main process,
# as the LocalExecutor does; the warehouse worker runs one task at a time anyway.
WAREHOUSE_WORKER_SETTINGS = {
    "AIRFLOW__CELERY__POOL": "solo",
}

"""The host name Airflow records for a task (``[core] hostname_callable``) in the Celery test.

Both workers of the test run on one machine; each is given the name of the host
it stands for, so the task instances say which worker ran them.
"""

import os


def hostname() -> str:
    return os.environ["LEADHUB_TEST_HOSTNAME"]

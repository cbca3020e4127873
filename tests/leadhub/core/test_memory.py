"""Arrow's allocator in the intake and validation processes (process-wide, so each case runs
in a child interpreter of its own)."""

import os
import subprocess
import sys

SHOW_POOL = ("import pyarrow as pa; from leadhub.core.memory import arrow_on_system_allocator; "
             "arrow_on_system_allocator(); print(pa.default_memory_pool().backend_name)")


def _pool_after_switch(env: dict) -> str:
    return subprocess.run([sys.executable, "-c", SHOW_POOL], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_arrow_allocates_through_the_c_library():
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _pool_after_switch(env) == "system"


def test_an_operators_own_pool_is_kept():
    assert _pool_after_switch({**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}) == "jemalloc"

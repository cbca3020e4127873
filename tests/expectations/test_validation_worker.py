"""The validation process ends with the intake process, however that one ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Starts the validation process, prints its pid and ends without any clean-up (os._exit),
# as a killed process or a task runner's process ends.
PROGRAM = """
import os
from expectations.validate import _validation_worker, validation_worker_ready
if __name__ == "__main__":
    validation_worker_ready()
    print(*_validation_worker()._processes, flush=True)
    os._exit(0)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # an exited child of init is reaped at once; a zombie would still answer signal 0
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_the_validation_process_exits_when_its_parent_is_gone(tmp_path):
    script = tmp_path / "start_and_vanish.py"
    script.write_text(PROGRAM)
    out, err = tmp_path / "pid.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files, not pipes an orphan would hold open
        done = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=stdout, stderr=stderr,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, err.read_text()[-2000:]
    [pid] = [int(p) for p in out.read_text().split()]
    try:
        deadline = time.monotonic() + 30  # it looks for its parent once a second
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), f"validation process {pid} outlived its parent"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

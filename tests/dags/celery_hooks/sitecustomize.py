"""Test-only, on the Celery test's warehouse worker: pause one intake mid-load, once.

Python imports this module at start-up when its folder is on PYTHONPATH. Intake
reads one row per chunk here, and when ``$LEADHUB_TEST_PAUSE_DIR/arm`` exists,
the next intake to pseudonymize its second chunk renames it to ``paused`` and
sleeps. That happens inside the load's warehouse transaction, while DuckDB's
INSERT is pulling the delivery's rows and has been handed the first one
(``connectors.inbox.Intake._load``): rows are being written, nothing is
committed. The test then kills the worker and checks that the retry loads the
delivery exactly once. The rename makes it happen once: the retry runs through.
"""

import dataclasses
import os
import time
from pathlib import Path

PAUSE_DIR = os.environ.get("LEADHUB_TEST_PAUSE_DIR")
PAUSE_SECONDS = 600

if PAUSE_DIR:
    import connectors.inbox as inbox
    import leadhub.pipeline as pipeline

    assert hasattr(inbox.Intake, "chunk_rows"), "intake no longer reads chunk_rows: update this hook"
    inbox.Intake.chunk_rows = 1
    _intake_stages = pipeline.intake_stages

    def intake_stages(key):
        stages = _intake_stages(key)
        chunks = 0

        def pseudonymize(contract, columns):
            nonlocal chunks
            out = stages.pseudonymize(contract, columns)
            chunks += 1
            if chunks < 2:
                return out
            try:
                Path(PAUSE_DIR, "arm").rename(Path(PAUSE_DIR, "paused"))
            except FileNotFoundError:
                return out
            time.sleep(PAUSE_SECONDS)  # the test kills this process long before
            return out

        return dataclasses.replace(stages, pseudonymize=pseudonymize)

    pipeline.intake_stages = intake_stages

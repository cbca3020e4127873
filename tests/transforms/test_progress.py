"""Long steward work shows where it is: tqdm bars on a terminal, one log line per stage.

Key rotation and the crosswalk build replay the whole archive and can run for
minutes. On a terminal (a real pseudo-terminal here) the `leadhub` command
draws a bar per stage; piped or under Airflow it draws none, and the logs get
one line per stage either way.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios

from leadhub.core.keys import MasterKey, create_key_file
from leadhub.core.warehouse import connect
from tests.transforms.test_link import booking, load, row
from transforms.crosswalk import build_crosswalk
from transforms.link import link_people
from transforms.rotate import rotate_key


def small_hub(settings, master_key) -> None:
    """Two police referrals and two bookings of the same two people, linked."""
    load(settings, master_key,
         row("P1", "Quill", "Ada", "1975-01-01", "123-45-6780", 1) + row("P2", "Okafor", "Ben", "1970-05-05", "", 2),
         booking("J1", "Quil", "Ada", "01/01/1975", "", 1) + booking("J2", "Okafor", "Ben", "05/05/1970", "", 2))
    with connect(settings.warehouse_path) as con:
        link_people(con)


def run_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; return its code and what it drew."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns, as a terminal has
    process = subprocess.Popen([sys.executable, "-m", "leadhub.cli", *argv], stdin=child, stdout=child,
                               stderr=child, env=os.environ.copy(), close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return process.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_rotation_and_crosswalk_log_one_line_per_stage_and_draw_no_bar_by_default(settings, master_key, tmp_path,
                                                                                    caplog, capsys):
    small_hub(settings, master_key)
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    with caplog.at_level(logging.INFO):
        rotate_key(settings, master_key, new)
        build_crosswalk(settings, new)
    rotation = [r.getMessage() for r in caplog.records if r.name == "transforms.rotate"]
    crosswalk = [r.getMessage() for r in caplog.records if r.name == "transforms.crosswalk"]
    # replay, links and models, archive re-encryption, done; 2 batches, 4 rows, 2 archived files
    assert len(rotation) == 4, rotation
    assert "replaying 2 loaded batches" in rotation[0] and "4 staging rows" in rotation[1]
    assert "re-encrypting 2 archived originals" in rotation[2] and "done" in rotation[3]
    assert len(crosswalk) == 2 and "replaying 2 archived files" in crosswalk[0], crosswalk
    assert "it/s" not in capsys.readouterr().err  # no bar: this is not a terminal


def test_rotate_key_and_crosswalk_build_draw_bars_on_a_terminal(settings, master_key, tmp_path):
    small_hub(settings, master_key)
    code, drawn = run_on_a_terminal(["crosswalk", "build", "--reason", "case review"])
    assert code == 0, drawn
    assert "crosswalk: 100%" in drawn, drawn
    code, drawn = run_on_a_terminal(["rotate-key", "--new-key-file", str(tmp_path / "new.key"), "--create",
                                     "--reason", "yearly"])
    assert code == 0, drawn
    assert "re-pseudonymize: 100%" in drawn and "re-encrypt archive: 100%" in drawn, drawn
    assert "crosswalk: 100%" in drawn, drawn  # rebuilt under the new key

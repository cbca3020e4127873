"""The table the demo prints is the README's table: same rows, same places, in the same order."""

from __future__ import annotations

import os
import re
from pathlib import Path

from leadhub.cli.demo import _shown, demo_locations
from leadhub.core.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def readme_table() -> list[tuple[str, str]]:
    """(what, where) of the README table that follows 'table of where things are'."""
    text = README.read_text()
    start = text.index("| what | where |", text.index("table of where things are"))
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        what, where = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows.append((what, where.strip("`")))
    return rows


def test_the_demo_prints_the_readme_table_of_where_things_are(tmp_path, monkeypatch):
    # Paths as the README's default installation has them: ./data, and the demo key in ~/.config.
    monkeypatch.chdir(tmp_path)
    home = Path.home()
    settings = Settings(data_dir=tmp_path / "data", key_file=home / ".config" / "leadhub" / "demo.key")
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    printed = [(label, _shown(path)) for label, path, _ in demo_locations(settings)]
    expected = [(what, re.sub(r"^~", str(home), where).rstrip("/")) for what, where in readme_table()]
    assert [(what, where.rstrip(os.sep)) for what, where in printed] == expected



def test_generate_refuses_too_few_people_in_one_line(settings, capsys):
    from leadhub.cli import main

    # 1 person cannot hold the evaluation's LEAD and comparison cohorts.
    assert main(["generate", "--people", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("leadhub: error: --people 1: ") and err.count("\n") == 1, err


def test_demo_refuses_too_few_people_in_one_line_before_making_a_key(tmp_path, monkeypatch, capsys):
    from leadhub.cli import main

    monkeypatch.setenv("LEADHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEADHUB_KEY_FILE", str(tmp_path / "demo.key"))
    assert main(["demo", "--people", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("leadhub: error: --people 1: ") and err.count("\n") == 1, err
    assert not (tmp_path / "demo.key").exists()

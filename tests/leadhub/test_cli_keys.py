"""Which `leadhub` commands run without the master key: declared once (cli.NO_KEY_NEEDED), enforced for all.

Every subcommand the parser knows is run through ``main`` with no key anywhere
(no key file, no LEADHUB_MASTER_KEY, no provider). Those not exempted must
refuse with one line naming the missing key, before touching the data
directory; the exempted ones must run.
"""

from __future__ import annotations

import pytest

from leadhub import cli

# Arguments that get each command past argparse. A new command with required arguments needs an
# entry here; with none it is covered as it is.
SAMPLE_ARGS = {
    "decrypt": ["archive.enc", "original.csv"],
    "decrypt-drop": ["drop.lhx", "original.csv"],
    "link": ["--left", "a.csv", "--columns", "map.json", "--out", "pairs.csv", "--installation-key"],
    "reprocess": ["0123456789abcdef"],
    "release": ["0123456789abcdef", "--reason", "checked by hand"],
    "crosswalk": ["build"],
    "linkage": ["train"],
    "rotate-key": ["--new-key-file", "new.key", "--create"],
    "seal": ["--order", "CV-1", "--agency", "police", "--record", "A-1", "--reason", "court order"],
    "justice-counts": ["--out", "upload"],
}
# The exempted commands' keyed forms: the exemption holds only under its condition.
KEYED_FORMS = [["retention"], ["crosswalk", "lookup", "PK", "--reason", "court order"]]
# Exempted commands that are cheap and harmless to run here (demo would run the whole demo).
KEYLESS_RUNS = [["status"], ["quality"], ["retention", "--dry-run"], ["crosswalk", "verify"], ["keygen-drop"]]


def subcommands() -> list[str]:
    [action] = [a for a in cli.parser()._actions if a.dest == "command"]
    return list(action.choices)


def keyed_invocations() -> list[list[str]]:
    keyed = [[name, *SAMPLE_ARGS.get(name, [])] for name in subcommands() if name not in cli.NO_KEY_NEEDED]
    return keyed + KEYED_FORMS + [["link", *SAMPLE_ARGS["link"]]]


@pytest.fixture
def no_key(tmp_path, monkeypatch):
    for name in ("LEADHUB_MASTER_KEY", "LEADHUB_KEY_PROVIDER", "LEADHUB_DEMO", "AIRFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADHUB_KEY_FILE", str(tmp_path / "keys" / "master.key"))
    monkeypatch.setenv("LEADHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv", keyed_invocations(), ids=" ".join)
def test_every_command_not_declared_keyless_refuses_to_start_without_a_key(no_key, argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "no key file at" in err and "leadhub keygen" in err, err
    assert not (no_key / "data").exists(), "refused before anything was written"
    assert not (no_key / "new.key").exists()


@pytest.mark.parametrize("argv", KEYLESS_RUNS, ids=" ".join)
def test_commands_declared_keyless_run_without_a_key(no_key, argv, capsys):
    cli.main(argv)  # its own verdict on an empty installation (e.g. "no warehouse yet") may be non-zero
    err = capsys.readouterr().err
    assert "no key file" not in err and "demo key" not in err, err


def test_every_command_help_says_whether_it_needs_the_key(capsys):
    for name in subcommands():
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        expected = "Runs without a key" if name in cli.NO_KEY_NEEDED and not cli.NO_KEY_NEEDED[name][0] \
            else "Needs the master key"
        assert expected in text, (name, text)


def test_the_exemption_holds_only_under_its_condition():
    args = cli.parser().parse_args
    assert not cli.needs_key(args(["retention", "--dry-run"]))
    assert cli.needs_key(args(["retention"]))
    assert not cli.needs_key(args(["crosswalk", "verify"]))
    assert cli.needs_key(args(["crosswalk", "build"]))
    assert cli.needs_key(args(["airflow"]))  # the tasks it schedules all need the key


def test_the_readme_names_every_command_that_runs_without_a_key():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    keys = readme[readme.index("### Keys"):readme.index("### Running the stages by hand")]
    keys = " ".join(keys.split())
    for name, (conditions, label, _) in cli.NO_KEY_NEEDED.items():
        shown = label if not label.startswith("link ") else "link"  # written `link` without `--installation-key`
        assert f"`{shown}`" in keys, name

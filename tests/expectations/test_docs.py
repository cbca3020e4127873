"""Data Docs and the quality commands, on a small synthetic county taken through the real pipeline."""

from __future__ import annotations

from connectors.contracts import agencies, load_contracts
from connectors.inbox import ingest_agency
from connectors.synthetic import generate
from expectations.build_checks import record_build_checks
from expectations.docs import build_docs, index_path
from leadhub import cli
from leadhub.warehouse import connect
from transforms.build import build_warehouse


def test_docs_show_every_stored_run_and_the_cli_opens_them(settings, master_key, deliveries,
                                                           monkeypatch, capsys):
    generate(settings.inbox_dir, settings.answers_dir, people=300, seed=11, lead=30, comparison=20)
    for agency in agencies():
        assert {o["status"] for o in ingest_agency(settings, agency, master_key)} == {"accepted"}
    build_warehouse(settings)
    with connect(settings.warehouse_path) as con:
        build_id, results = record_build_checks(con)
    # Clean synthetic data passes both cross-extract checks, and they did check something.
    assert [r["success"] for r in results] == [True, True]
    assert all(not r["observed"].startswith("unexpected 0 of 0 ") for r in results)

    index = build_docs(settings)
    assert index == index_path(settings) == settings.data_dir / "docs" / "index.html"
    runs = deliveries.query(settings, "SELECT DISTINCT contract, batch_id FROM ops.data_quality")
    assert len(runs) == len(load_contracts()) + 2  # one batch per extract, two core tables checked
    pages = list((index.parent / "validations").rglob("*.html"))
    assert len(pages) == len(runs)  # every run rendered: GX logs a page it cannot draw and goes on
    assert {p.stem for p in pages} == {batch_id for _, batch_id in runs}
    index_html = index.read_text()
    assert all(batch_id in index_html for _, batch_id in runs)
    build_pages = " ".join(p.read_text() for p in pages if p.stem == build_id)
    assert "jail days are at least 1" in build_pages
    assert "LEAD-referred intake is not before" in build_pages
    suite_page = (index.parent / "expectations" / "jail_bookings.html").read_text()
    assert "release is not before booking" in suite_page

    stale = index.parent / "validations" / "stale.html"
    stale.write_text("old")
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert cli.main(["docs", "--open"]) == 0
    assert capsys.readouterr().out.strip() == f"data docs: {index}"
    assert opened == [index.as_uri()]
    assert not stale.exists()  # rebuilt from scratch, so nothing outlives the stored results

    assert cli.main(["quality", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(build_id in line for line in lines[:2])
    assert cli.main(["quality", "--failed"]) == 0
    assert capsys.readouterr().out.strip() == "no failed checks"

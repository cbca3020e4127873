"""Data Docs and the quality commands, on a small synthetic county taken through the real pipeline."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leadhub.core.contracts import agencies, load_contracts
from leadhub.pipeline import ingest_agency
from synthetic import generate
from expectations.build_checks import record_build_checks
from expectations.docs import CDN_ASSETS, VENDOR_DIR, build_docs, index_path, remote_resources
from leadhub import cli
from leadhub.core.warehouse import connect
from leadhub.pipeline import build as build_warehouse
from tests.conftest import hub_at


@pytest.fixture(scope="module")
def taken_in(tmp_path_factory):
    """A small synthetic county generated and taken in once: (settings, intake outcomes).
    Each test works on a copy (``county``)."""
    with hub_at(tmp_path_factory.mktemp("docs_county")) as (settings, master_key):
        generate(settings.inbox_dir, settings.answers_dir, people=300, seed=11, lead=30, comparison=20)
        outcomes = [o for agency in agencies() for o in ingest_agency(settings, agency, master_key)]
    return settings, outcomes


@pytest.fixture
def county(taken_in, settings):
    """A private copy of the taken-in county in the test's data directory, with its key: its outcomes."""
    template, outcomes = taken_in
    shutil.copytree(template.data_dir, settings.data_dir, symlinks=True, dirs_exist_ok=True)
    shutil.copy2(template.key_file, settings.key_file)
    return outcomes


def test_docs_show_every_stored_run_and_the_cli_opens_them(settings, county, deliveries, monkeypatch, capsys):
    assert [o["status"] for o in county] == ["accepted"] * len(load_contracts())
    build_warehouse(settings)
    with connect(settings.warehouse_path) as con:
        build_id, results = record_build_checks(con)
    # Clean synthetic data passes the three cross-extract checks, and they did check something.
    assert [r["success"] for r in results] == [True, True, True]
    assert all(not r["observed"].startswith("unexpected 0 of 0 ") for r in results)

    index = build_docs(settings)
    assert index == index_path(settings) == settings.data_dir / "docs" / "index.html"
    runs = deliveries.query(settings, "SELECT DISTINCT contract, batch_id FROM ops.data_quality")
    assert len(runs) == len(load_contracts()) + 3  # one batch per extract, three core tables checked
    pages = list((index.parent / "validations").rglob("*.html"))
    assert len(pages) == len(runs)  # every run rendered: GX logs a page it cannot draw and goes on
    assert {p.stem for p in pages} == {batch_id for _, batch_id in runs}
    index_html = index.read_text()
    assert all(batch_id in index_html for _, batch_id in runs)
    build_pages = " ".join(p.read_text() for p in pages if p.stem == build_id)
    assert "jail days are at least 1" in build_pages
    assert "LEAD-referred intake is not before" in build_pages
    assert "assessed client is listed in the treatment clients extract" in build_pages
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


# ---------------------------------------------------------------- offline rendering

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian "
                                                             "package 'chromium'); cannot render")

# Put first in <head>: records every resource that fails to load, then, once the page's own
# scripts have run, what the browser made of it, on <body> for --dump-dom to carry out.
PROBE = """<script>
window.__failed = [];
window.addEventListener("error", (e) => {
  const t = e.target;
  if (t && t !== window) window.__failed.push(t.src || t.href || t.tagName);
}, true);
window.addEventListener("load", () => setTimeout(() => {
  const b = document.body.dataset, row = document.querySelector(".row");
  b.failed = window.__failed.join(" ") || "none";
  b.rowdisplay = row ? getComputedStyle(row).display : "no .row";
  b.jquery = typeof window.jQuery;
  b.bootstraptable = window.jQuery && jQuery.fn.bootstrapTable ? "yes" : "no";
  b.vega = typeof window.vegaEmbed;
  b.tablerows = document.querySelectorAll("table tbody tr[data-index]").length;
  b.fontawesome = [...document.fonts].filter(f => f.family.includes("Font Awesome")
                                                  && f.status === "loaded").length;
}, 200));
</script>"""


class Body(HTMLParser):
    """The attributes of the dumped document's <body>."""

    def __init__(self):
        super().__init__()
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.attrs = dict(attrs)


def render_offline(page: Path, profile: Path) -> dict[str, str]:
    """Load a copy of ``page`` with the probe, beside it, in Chromium that can resolve no host."""
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120)
    probed.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    body = Body()
    body.feed(done.stdout)
    return {k.removeprefix("data-"): v for k, v in body.attrs.items()}


@needs_chromium
def test_data_docs_render_styled_and_filled_without_a_network(settings, county, tmp_path):
    assert [o["status"] for o in county] == ["accepted"] * len(load_contracts())
    index = build_docs(settings)
    site = index.parent
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(load_contracts())    # index, 7 suites, 7 validation runs
    for page in pages:
        text = page.read_text()
        assert remote_resources(text) == [], page
        assert not re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=[\"']?https?://", text), page
        assert "integrity=" not in text                 # a file:// page cannot check it
        for target in re.findall(r"(?:src|href)=\"([^\"]*static/vendor/[^\"]*)\"", text):
            assert (page.parent / target).resolve().is_file(), (page, target)

    # The index: Bootstrap's grid applies (.row is block without it), jQuery and
    # bootstrap-table ran and drew one row per validation run, Vega and Font Awesome loaded.
    shown = render_offline(index, tmp_path / "profile")
    assert shown["failed"] == "none"
    assert shown["rowdisplay"] == "flex"
    assert (shown["jquery"], shown["bootstraptable"], shown["vega"]) == ("function", "yes", "function")
    assert int(shown["tablerows"]) >= len(load_contracts())    # one batch per extract
    assert int(shown["fontawesome"]) >= 1
    # A validation page, three folders further down, finds the same assets.
    run_page = next(iter(sorted((site / "validations").rglob("*.html"))))
    shown = render_offline(run_page, tmp_path / "profile2")
    assert shown["failed"] == "none" and shown["rowdisplay"] == "flex"
    assert shown["bootstraptable"] == "yes"


def test_vendored_scripts_are_the_ones_gx_pins_by_hash():
    """GX pins Popper and Bootstrap with subresource-integrity hashes; the copies must match."""
    import great_expectations

    template = (Path(great_expectations.__file__).parent / "render" / "view" / "templates"
                / "js_script_imports.j2").read_text()
    pinned = dict(re.findall(r'src="([^"]+)" integrity="sha384-([^"]+)"', template))
    assert len(pinned) == 2
    for url, digest in pinned.items():
        copy = VENDOR_DIR.parent / CDN_ASSETS[url]
        assert base64.b64encode(hashlib.sha384(copy.read_bytes()).digest()).decode() == digest
    # Every address GX's templates load is mapped to a file that exists.
    templates = (Path(great_expectations.__file__).parent / "render" / "view" / "templates")
    loaded = {u for t in templates.glob("*.j2") for u in
              re.findall(r'<(?:script|link)[^>]*(?:src|href)="(https://[^"]+)"', t.read_text())}
    assert loaded and loaded <= set(CDN_ASSETS)
    gx_static = Path(great_expectations.__file__).parent / "render" / "view" / "static"
    for target in CDN_ASSETS.values():      # ours under vendor/, the rest shipped by GX
        assert (VENDOR_DIR.parent if target.startswith("vendor/") else gx_static).joinpath(
            target).is_file(), target

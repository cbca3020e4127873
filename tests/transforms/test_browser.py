"""The report as a reader sees it: rendered by headless Chromium, offline (no host resolves).

Chromium's ``--dump-dom`` prints the document after the page has loaded; a
small probe script, added to a copy of the report (the report itself carries no
script), records on the <body> how many images decoded and how many tables and
charts were laid out with a size, so the test reads what the browser did
rather than what the HTML says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from transforms.report import PART2_NOTICE, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package "
                                                         "'chromium'); the browser check cannot run")

PROBE = """<script>
window.addEventListener("load", () => {
  const shown = (el) => el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().height > 0;
  const images = [...document.images];
  document.body.dataset.imagesDecoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesShown = images.filter(shown).length;
  document.body.dataset.tablesShown = [...document.querySelectorAll("table")].filter(shown).length;
  document.body.dataset.linkageChartsShown =
    [...document.querySelectorAll("figure.linkage-chart svg")].filter(shown).length;
});
</script>"""


class Dom(HTMLParser):
    """Tables, their header cells, images and the <body> attributes of the dumped DOM."""

    def __init__(self):
        super().__init__()
        self.body: dict[str, str] = {}
        self.tables = 0
        self.headers: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "table":
            self.tables += 1
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "section":
            self.sections.append(attrs.get("id", ""))
        self._in_th = tag == "th"

    def handle_data(self, data):
        if self._in_th:
            self.headers.append(data)

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False


def render(page: Path, profile: Path) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--disable-background-networking",
         "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_with_its_charts_and_tables(demo_hub, tools, tmp_path):
    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    paths = write_report(hub)
    report = Path(paths["html"])
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))

    dom = Dom()
    dom.feed(render(probed, tmp_path / "profile"))
    tables = [name for name in paths if name != "html"]
    charts = [src for src in dom.images if src.startswith("data:image/png;base64,")]

    assert dom.tables == len(tables) == len(dom.sections)
    assert set(dom.sections) == set(tables)
    # referrals per quarter, caseload, outcomes, life-outcome shares by month since referral
    assert len(charts) == len(dom.images) == 4
    assert dom.body.get("data-images-decoded") == "4"          # every chart is a real image
    assert dom.body.get("data-images-shown") == "4"
    assert dom.body.get("data-tables-shown") == str(len(tables))
    assert dom.body.get("data-linkage-charts-shown") == "1"     # the match-weight SVG, laid out inline
    for header in ("Quarter", "Odds ratio", "Readmissions", "Population on 31 December", "Share of arrested",
                   "Days to first contact"):
        assert header in dom.headers
    text = re.sub(r"\s+", " ", render(report, tmp_path / "profile2"))
    assert "LEAD evaluation report" in text and PART2_NOTICE in text
    assert "Match weight (log2 Bayes factor) per comparison level" in text

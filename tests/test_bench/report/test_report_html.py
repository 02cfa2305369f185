"""The HTML report leads with the answer and fits a laptop screen (1,400 px) without scrolling sideways."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.paths import REPO

from bench.report.data import report_data
from bench.report.terminal import write_report
from bench.store.results import load_run

RESULTS = REPO / "results/runs"
# The default suite from a fresh clone (three densities), the README's run (five), and the first with the
# dense frontier and model providers, all committed.
RUNS = ["cpu-20261202-083023", "cpu-20261202-090239", "cpu-20261203-094905"]


@pytest.fixture(scope="module", params=RUNS)
def page(request, tmp_path_factory) -> Path:
    return write_report(report_data(load_run(RESULTS / request.param)), tmp_path_factory.mktemp("report"))


class Outline(HTMLParser):
    """Headings in order, table ids, and text outside <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.tables: list[str] = []
        self._heading: str | None = None
        self._details = 0
        self.visible_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3"):
            self._heading = ""
        if tag == "table" and (ident := dict(attrs).get("id")):
            self.tables.append(ident)
        if tag == "details":
            self._details += 1

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None
        if tag == "details":
            self._details -= 1

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if not self._details:
            self.visible_text.append(data)


def outline(page: Path) -> Outline:
    parser = Outline()
    parser.feed(page.read_text())
    return parser


def test_the_page_leads_with_the_answer(page):
    o = outline(page)
    h2 = [h for h in o.headings if not h.startswith("condbench run")]
    assert h2[:4] == ["The answer", "Is it worth it? The fastest model of all within each test-error budget",
                      "Each CondNet against the fastest dense net as accurate",
                      "The best block size per batch and density"]
    assert o.tables[:3] == ["fastest-models", "iso-accuracy", "best-configurations"]
    assert o.headings.index("Where it stops paying") < o.headings.index("Every kernel case")
    # Compact tables in the terminal's units; the machine as a table of entries, not a raw dump.
    text = page.read_text()
    assert "baseline ms" in text and "test error %" in text and "{'cpu':" not in text
    # The best-configuration table shows speedups with their intervals, on the page, not in a <details>.
    assert re.search(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \(k \d+\)", "".join(o.visible_text))


def test_every_column_is_one_click_away(page):
    text = page.read_text()
    assert text.count("<details>") >= 4 and "every column of every kernel case" in text
    assert "dense_median_s" in text  # the raw columns are on the page, inside <details>


def _browser() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_browser() is None, reason="needs Chromium (.ci/run installs Debian's)")
def test_at_1400_px_nothing_scrolls_sideways_and_the_speedups_are_on_screen(page):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_browser(), args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": 1400, "height": 900})
            view.goto(page.as_uri())
            assert view.evaluate("document.documentElement.scrollWidth") <= 1400
            # Every compact table, and in each its speedup column's header, ends inside the window.
            rights = view.evaluate("""Array.from(document.querySelectorAll('table[id]')).map(t => [t.id,
                t.getBoundingClientRect().right,
                Math.max(0, ...Array.from(t.querySelectorAll('th')).filter(h => /x \\[95%\\]|speedup|d = /.test(h.textContent))
                    .map(h => h.getBoundingClientRect().right))])""")
            assert {r[0] for r in rights} >= {"best-configurations", "fastest-models", "break-even", "models",
                                              "sweep-decode", "sweep-large-batch", "peers"}
            for ident, table_right, speed_right in rights:
                assert table_right <= 1400, ident
                assert speed_right <= 1400, ident
            # The first screen shows the answer's first table: the fastest model of all per error budget.
            assert view.evaluate("document.querySelector('table[id]').id") == "fastest-models"
            assert view.evaluate("document.getElementById('fastest-models').getBoundingClientRect().top") < 900
        finally:
            browser.close()

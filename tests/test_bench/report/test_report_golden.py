"""Every committed run's terminal report, HTML page and markdown summary, kept byte for byte.

A change to how a report is built (a refactor, a renderer moved) must not change what any committed run
reads as. The PNGs are left out: matplotlib's bytes move with its version, and tests/test_bench/report/test_plots.py checks
the figures; the page is kept with each image's data cut to "...", its tag and place kept. Plotting is
skipped (no layout, no PNG encoding) to keep the test fast. A page written outside its run folder links
the run's traces by absolute path, which depends on where the checkout lies: the run folder's path reads
as RUN in the kept page. A deliberate change to a report rewrites the golden files (the command in
REWRITE), and the diff shows what every run now reads.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import matplotlib.figure
import pytest
from rich.console import Console
from support.paths import REPO

from bench.report import terminal as report
from bench.report.data import report_data
from bench.report.markdown import markdown_summary
from bench.store.results import load_run

RUNS = sorted(p for p in (REPO / "results" / "runs").iterdir() if (p / "env.json").is_file())
GOLDEN = Path(__file__).with_name("golden") / "reports"
REWRITE = "PYTHONPATH=tests python tests/test_bench/report/test_report_golden.py --write"
IMAGE_DATA = re.compile(r"base64,[A-Za-z0-9+/=]+")


def render(run_dir: Path, scratch: Path) -> dict[str, str]:
    """The run's three renderings as text: report.txt (160 columns, no colour), summary.md, index.html."""
    data = report_data(load_run(run_dir))  # built once: the three are renderings of it
    terminal = io.StringIO()
    report.print_report(data, Console(file=terminal, width=160, color_system=None, force_terminal=False))
    markdown = markdown_summary(data, run_dir.relative_to(REPO).as_posix())
    page = report.write_report(data, scratch).read_text()
    return {"report.txt": terminal.getvalue(), "summary.md": markdown + "\n",
            "index.html": IMAGE_DATA.sub("base64,...", page).replace(str(run_dir.resolve()), "RUN")}


def _without_plotting(patch) -> None:
    patch.setattr(report, "figure_png", lambda fig: b"")
    patch.setattr(matplotlib.figure.Figure, "tight_layout", lambda self, *args, **kwargs: None)


@pytest.mark.parametrize("run_dir", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_runs_reports_read_as_they_did(run_dir: Path, tmp_path, monkeypatch):
    _without_plotting(monkeypatch)
    golden = GOLDEN / run_dir.name
    assert golden.is_dir(), f"no golden reports for {run_dir.name}: {REWRITE}"
    for name, text in render(run_dir, tmp_path).items():
        kept = (golden / name).read_text()
        assert text == kept, f"{run_dir.name}/{name} changed; if that is meant, {REWRITE} and read the diff"


def test_every_committed_run_has_its_golden_reports():
    assert sorted(p.name for p in GOLDEN.iterdir()) == [p.name for p in RUNS]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as scratch:
        _without_plotting(patch)
        for run_dir in RUNS:
            (GOLDEN / run_dir.name).mkdir(parents=True, exist_ok=True)
            for name, text in render(run_dir, Path(scratch)).items():
                (GOLDEN / run_dir.name / name).write_text(text)
            print(f"wrote {GOLDEN / run_dir.name}")

"""A run folder is data from anywhere: a `<script>` in any field it holds is text on the report's page and
in `bench summary --markdown`, never markup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.paths import REPO

from bench.report.data import report_data
from bench.report.markdown import markdown_summary
from bench.report.terminal import write_report
from bench.store.results import load_run

RUN = REPO / "results/runs/cpu-20261203-094905"
PAYLOAD = "<script>alert(1)</script>"
# Every free-text field a row or env.json holds that a report shows; the words the report's logic keys
# on (a policy named dense, a status of ok) stay, with the payload after them where it is free text.
KERNEL_FIELDS = ("sweep", "dtype", "masks", "mask_source", "regime_used", "backend", "model")
MODEL_FIELDS = ("dataset", "inference_mode")
# (torch_threads is read as an int: a string there is refused as damage, tests/support/damaged_artefacts.py)
ENV_FIELDS = ("cpu_model", "cpu_capability", "torch", "hostname", "platform")


def _poison_rows(path: Path, fields: tuple[str, ...], also) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        for key in fields:
            if isinstance(row.get(key), str):
                row[key] += PAYLOAD
        also(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _poison_kernel(row: dict) -> None:
    row["error"] = PAYLOAD
    for check in row.get("checks", []):
        check["provider"] += PAYLOAD
    for metric in row.get("metrics", []):
        if metric["provider"] not in ("ours", "dense"):
            metric["provider"] += PAYLOAD


def _poison_model(row: dict) -> None:
    if row["policy"] != "dense":
        row["policy"] += PAYLOAD
    for check in row.get("checks", []):
        check["error"] = PAYLOAD


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("poisoned") / RUN.name
    shutil.copytree(RUN, folder, ignore=shutil.ignore_patterns("report", "*.csv", "*.parquet"))
    _poison_rows(folder / "kernels.jsonl", KERNEL_FIELDS, _poison_kernel)
    _poison_rows(folder / "models.jsonl", MODEL_FIELDS, _poison_model)
    env = json.loads((folder / "env.json").read_text())
    for key in ENV_FIELDS:
        env[key] = str(env.get(key)) + PAYLOAD
    (folder / "env.json").write_text(json.dumps(env))
    return folder


def test_the_page_shows_every_poisoned_field_as_text(poisoned):
    text = write_report(report_data(load_run(poisoned)), poisoned / "report").read_text()
    assert "<script" not in text.lower()
    # the fields are there, as text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= len(KERNEL_FIELDS)


def test_the_markdown_summary_shows_them_as_text(poisoned):
    text = markdown_summary(report_data(load_run(poisoned)), "results/runs/x")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text


def test_a_case_whose_masks_turn_every_block_off_reports(tmp_path):
    """A trained model's masks may run no block at all (work density 0): a real row, reported (found
    probing as a traceback), not refused as damage."""
    from support.bad_inputs import GOOD_ROW, RUN, run_folder

    from bench.report.terminal import print_report

    for name, content in run_folder().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    (tmp_path / RUN / "kernels.jsonl").write_text(json.dumps({**json.loads(GOOD_ROW), "ideal_density": 0.0,
                                                              "work_density": 0.0}) + "\n")
    data = report_data(load_run(tmp_path / RUN))
    print_report(data)
    assert "Every kernel case" in write_report(data, tmp_path / "report").read_text()

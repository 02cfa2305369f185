"""Each test file's seconds in one run of the README's test command, for the order xdist hands files out
in (tests/conftest.py): the longest first, so that the last file a worker takes is a short one and no
worker runs a minute-long file alone at the end. The numbers only order the files; a stale one costs
seconds of the run, never a result.

    TRITON_INTERPRET=1 python -m pytest -q -n 3 --dist loadfile -m "not alone" --junitxml=/tmp/j.xml
    python tests/support/file_seconds.py /tmp/j.xml     # rewrites tests/file_seconds.json
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

FILE = Path(__file__).resolve().parents[1] / "file_seconds.json"


def read() -> dict[str, float]:
    """{path relative to tests/: seconds}; empty when the file is missing or damaged."""
    try:
        seconds = json.loads(FILE.read_text())
    except (OSError, ValueError):
        return {}
    return seconds if isinstance(seconds, dict) else {}


def from_junit(report: Path) -> dict[str, float]:
    seconds: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        # classname is the module's dotted path from the root (tests.test_bench.test_launch), then any class
        parts = [p for p in case.get("classname", "").split(".")[1:] if not p.startswith("Test")]
        seconds["/".join(parts) + ".py"] += float(case.get("time") or 0)
    return {name: round(s, 1) for name, s in seconds.most_common()}


if __name__ == "__main__":
    FILE.write_text(json.dumps(from_junit(Path(sys.argv[1])), indent=1) + "\n")

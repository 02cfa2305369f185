"""Where the tests find the repository's own files (suites, committed runs, sources)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

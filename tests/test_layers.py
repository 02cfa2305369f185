"""The import layers of pyproject.toml's [tool.importlinter] contracts hold (import-linter reads the
source, so a broken contract fails here whichever test would have imported the module)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_layer_contracts_hold(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=str(tmp_path), no_logo=True) == 0
    assert "2 kept, 0 broken" in capsys.readouterr().out


def test_a_broken_contract_fails(monkeypatch, tmp_path, capsys):
    """The check can fail: a toy condcore whose ops package imports the mask generators, with every
    module the contracts name present, breaks the ops contract and only that one."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    src = tmp_path / "src"
    for module in {"condcore.ops", "bench"} | {m for c in contracts for m in c["forbidden_modules"]}:
        path = src.joinpath(*module.split("."))
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.py").write_text("")
    (src / "condcore" / "__init__.py").write_text("")
    (src / "condcore" / "ops" / "__init__.py").write_text("import condcore.masks\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(src))
    for name in [n for n in sys.modules if n.split(".")[0] in ("condcore", "bench")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True, no_logo=True) == 1
    out = capsys.readouterr().out
    assert "1 kept, 1 broken" in out and "condcore.ops -> condcore.masks" in out, out

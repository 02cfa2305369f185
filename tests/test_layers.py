"""The import layers of pyproject.toml's [tool.importlinter] contracts hold (import-linter reads the
source, so a broken contract fails here whichever test would have imported the module)."""

from __future__ import annotations

import sys

import tomllib
from importlinter.cli import lint_imports
from support.paths import REPO


def test_the_layer_contracts_hold(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(REPO)
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), cache_dir=str(tmp_path), no_logo=True) == 0
    assert "4 kept, 0 broken" in capsys.readouterr().out


def test_a_broken_contract_fails(monkeypatch, tmp_path, capsys):
    """The check can fail: a toy condcore whose ops package imports the mask generators (a layer above
    it) and whose CPU kernels import the dispatch table (above them), with every module the contracts
    name present, breaks condcore's layers and ops' layers, and only those."""
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    src = tmp_path / "src"
    modules = {"bench", "condcore"}
    for contract in contracts:
        for container in contract.get("containers", [""]):
            for layer in contract["layers"]:
                modules |= {f"{container}.{name.strip()}".strip(".") for name in layer.split("|")}
    for module in modules:
        path = src.joinpath(*module.split("."))
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.py").write_text("")
    (src / "condcore" / "__init__.py").write_text("")
    (src / "condcore" / "ops" / "__init__.py").write_text("import condcore.masks\n")
    (src / "condcore" / "ops" / "cpu" / "__init__.py").write_text("import condcore.ops.registry\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(src))
    for name in [n for n in sys.modules if n.split(".")[0] in ("condcore", "bench")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True, no_logo=True) == 1
    out = capsys.readouterr().out
    assert "2 kept, 2 broken" in out and "condcore.ops is not allowed to import condcore.masks" in out, out
    assert "condcore.ops.cpu is not allowed to import condcore.ops.registry" in out, out


def test_only_the_cli_parses_arguments():
    """argparse stays at the edge: every command turns its arguments into typed options or plain calls
    in bench/cli/, and no Namespace travels further (bench.runner.RunOptions, ContinuousOptions, ...)."""
    import ast

    parsing = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        if path.parent == REPO / "bench" / "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "argparse" for name in names):
                parsing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not parsing, f"argparse outside bench/cli/: {parsing}"

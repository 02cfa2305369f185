"""The GPU machines' offline install: the wheels their image lacks, fetched for CPython 3.12 on x86-64 and
checked against each other and the image (bench.gpu.wheels, `bench gpu-wheels`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support.bench_cli import bench

from bench.core.errors import UserError
from bench.gpu import wheels

IMAGE = frozenset({"numpy", "torch", "typing-extensions"})


def fake_wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata)
    return path


def project_needs(monkeypatch, *requirements: str) -> None:
    monkeypatch.setattr(wheels, "project_requirements", lambda: [Requirement(r) for r in requirements])


def test_the_image_list_holds_torch_and_triton_and_not_what_the_issue_names_missing():
    image = wheels.image_packages()
    assert {"torch", "triton", "numpy", "pandas", "onnxruntime", "pytest-benchmark"} <= image
    assert not {"pydantic", "pydantic-core", "annotated-types", "typing-inspection", "mlxtend", "submitit"} & image


def test_requirements_are_met_by_the_folder_or_the_image(tmp_path, monkeypatch):
    project_needs(monkeypatch, "pydantic>=2.5", "numpy>=1.26", "tomli; python_version < '3.11'")
    fake_wheel(tmp_path, "pydantic", "2.9.0", ["pydantic-core==2.23.0", "typing-extensions>=4.6",
                                                "email-validator>=2; extra == 'email'"])
    assert wheels.unmet(tmp_path, IMAGE) == ["pydantic needs pydantic-core==2.23.0: neither carried nor in the image"]
    fake_wheel(tmp_path, "pydantic-core", "2.22.0", [], tag="cp312-cp312-manylinux_2_17_x86_64")
    assert wheels.unmet(tmp_path, IMAGE) == [
        "pydantic needs pydantic-core==2.23.0: carried pydantic_core-2.22.0-cp312-cp312-manylinux_2_17_x86_64.whl"]
    (tmp_path / "pydantic_core-2.22.0-cp312-cp312-manylinux_2_17_x86_64.whl").unlink()
    fake_wheel(tmp_path, "pydantic-core", "2.23.0", ["typing-extensions>=4.6"], tag="cp312-cp312-manylinux_2_17_x86_64")
    assert wheels.unmet(tmp_path, IMAGE) == []  # tomli applies to Python < 3.11 only, the extra to nobody


def test_a_project_requirement_missing_everywhere_is_named(tmp_path, monkeypatch):
    project_needs(monkeypatch, "mlxtend>=0.23")
    assert wheels.unmet(tmp_path, IMAGE) == ["condbench needs mlxtend>=0.23: neither carried nor in the image"]


def test_two_versions_of_one_package_are_refused(tmp_path):
    fake_wheel(tmp_path, "submitit", "1.5.1", [])
    fake_wheel(tmp_path, "submitit", "1.5.2", [])
    with pytest.raises(UserError, match="two wheels of submitit"):
        wheels.wheels_in(tmp_path)


def test_download_fetches_the_closure_one_wheel_at_a_time(tmp_path, monkeypatch):
    """Each requirement alone (--no-deps), for CPython 3.12 on x86-64, and then what it requires that the
    image lacks: nothing the image holds is ever asked for."""
    project_needs(monkeypatch, "pydantic>=2.5", "numpy>=1.26")
    asked = []
    made = {"pydantic>=2.5": ("pydantic", "2.9.0", ["pydantic-core==2.23.0", "typing-extensions>=4.6"]),
            "pydantic-core==2.23.0": ("pydantic-core", "2.23.0", ["typing-extensions>=4.6"])}

    def fake_pip(argv, **kwargs):
        asked.append(argv)
        fake_wheel(Path(argv[argv.index("--dest") + 1]), *made[argv[-1]])
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(wheels.subprocess, "run", fake_pip)
    made["typing-extensions>=4.6"] = ("typing-extensions", "4.15.0", [])
    got = wheels.download(tmp_path, IMAGE, pip=["pip"])
    # typing-extensions too, though the image holds one: the image's may be older than pydantic-core needs
    assert sorted(w.name for w in got) == ["pydantic", "pydantic-core", "typing-extensions"]
    assert [a[-1] for a in asked] == ["pydantic>=2.5", "pydantic-core==2.23.0", "typing-extensions>=4.6"]
    for argv in asked:
        assert "--no-deps" in argv and argv[argv.index("--python-version") + 1] == "3.12"
        assert "--only-binary=:all:" in argv and "manylinux2014_x86_64" in argv


@pytest.mark.slow
def test_the_real_wheels_are_fetched_and_pip_accepts_them_for_python_3_12(tmp_path):
    """The command a developer runs before a GPU session, against the package registry: the folder then
    holds the image's missing packages as CPython 3.12 wheels, and pip's dry run for 3.12 accepts them."""
    proc = bench("gpu-wheels", "--out", tmp_path / "w", fresh=True)
    if proc.returncode == 2 and "pip found no" in proc.stderr and "No matching distribution" not in proc.stderr:
        pytest.skip(f"no package registry reachable: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    held = {w.name for w in wheels.wheels_in(tmp_path / "w").values()}
    assert {"pydantic", "pydantic-core", "annotated-types", "typing-inspection", "mlxtend", "submitit"} <= held
    assert held & wheels.image_packages() <= wheels.CARRIED_ANYWAY  # torch, triton, numpy, ... stay the image's
    assert any(p.name.startswith("pydantic_core-") and "cp312" in p.name for p in (tmp_path / "w").iterdir())
    assert "pip accepts them for CPython 3.12" in proc.stdout and wheels.INSTALL in proc.stdout
    again = bench("gpu-wheels", "--out", tmp_path / "w", "--check-only")
    assert again.returncode == 0, again.stderr
    # a wheel for another Python is refused by pip's own check
    fake_wheel(tmp_path / "w", "zz-native", "1.0", [], tag="cp311-cp311-manylinux_2_17_x86_64")
    refused = bench("gpu-wheels", "--out", tmp_path / "w", "--check-only")
    assert refused.returncode == 2 and "pip refuses these wheels" in refused.stderr, refused.stderr

"""The wheels a GPU machine's image lacks, for an offline install there: `python -m bench gpu-wheels`.

The GPU machines have no network and an image with torch and triton but not all of condbench's
dependencies (image-packages.txt beside this file). This fills a folder with wheels for CPython 3.12 on
x86-64 Linux of every requirement of condbench (its dependencies and the `cluster` extra) that the image
does not hold, and of their requirements in turn, each fetched alone (`pip download --no-deps`) so that
nothing the image holds (torch, triton, numpy) is ever carried or replaced. Then it checks the folder:
every requirement of every wheel, and of condbench, is met by a wheel in it or by the image, and pip
accepts the wheels for Python 3.12 (`pip install --dry-run` against them alone). INSTALL is the line that
installs them there, beside the image's packages and without touching them.
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from bench.core.errors import UserError, last_line
from bench.regression.revision import PROJECT_ROOT

WHEELS = Path(".gpu-wheels")
# The GPU image's interpreter and machine, as pip names them.
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
TARGET = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
          *(arg for platform in PLATFORMS for arg in ("--platform", platform))]
# The project's extras the GPU run may use: sweeps as scheduler jobs (submitit).
EXTRAS = ("cluster",)
# Carried even though the image holds it, when a carried wheel requires it: pydantic-core's minimum
# typing-extensions moves with each release, faster than an image is rebuilt, and nothing else reads
# the image's version before the run. A newer typing-extensions serves the image's packages as well.
CARRIED_ANYWAY = frozenset({"typing-extensions"})
# On the GPU machine, from the checkout's root: the carried wheels into a folder of their own, on the path
# before the image's site-packages only for what they add.
INSTALL = (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "
           f"{WHEELS}/*.whl && export PYTHONPATH=/tmp/site")


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # canonical
    version: str
    requires: tuple[Requirement, ...]  # those that apply on the GPU machine


def image_packages() -> frozenset[str]:
    lines = resources.files("bench.gpu").joinpath("image-packages.txt").read_text().splitlines()
    return frozenset(canonicalize_name(line) for line in lines if line.strip() and not line.startswith("#"))


def project_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[Requirement]:
    import tomllib  # Python 3.11 and later: only this command needs it

    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(r) for r in [*project["dependencies"], *(r for e in EXTRAS for r in extras.get(e, []))]]


def gpu_environment() -> dict[str, str]:
    """The marker environment of the GPU machines' interpreter (CPython 3.12 on x86-64 Linux)."""
    return {**default_environment(), "python_version": PYTHON, "python_full_version": f"{PYTHON}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}


def applies(requirement: Requirement) -> bool:
    """Whether a requirement is one the GPU machine needs (its marker, with no extra asked for)."""
    return requirement.marker is None or requirement.marker.evaluate({**gpu_environment(), "extra": ""})


def read_wheel(path: Path) -> Wheel:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as archive:
            (metadata,) = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            headers = email.parser.Parser().parsestr(archive.read(metadata).decode())
        requires = tuple(r for r in map(Requirement, headers.get_all("Requires-Dist") or []) if applies(r))
    except (InvalidWheelFilename, zipfile.BadZipFile, ValueError, InvalidRequirement) as exc:
        raise UserError(f"{path}: not a readable wheel ({exc}); delete it and fetch again") from None
    return Wheel(path, canonicalize_name(name), str(version), requires)


def wheels_in(folder: Path) -> dict[str, Wheel]:
    paths: dict[str, Path] = {}
    for path in sorted(folder.glob("*.whl")):
        try:
            name = canonicalize_name(parse_wheel_filename(path.name)[0])
        except InvalidWheelFilename as exc:
            raise UserError(f"{path}: not a wheel's name ({exc})") from None
        if name in paths:
            raise UserError(f"{folder}: two wheels of {name} ({paths[name].name}, {path.name}); "
                            "the install would stop at the second: delete one")
        paths[name] = path
    return {name: read_wheel(path) for name, path in paths.items()}


def unmet(folder: Path, image: frozenset[str] | None = None) -> list[str]:
    """Each requirement (of condbench, or of a wheel in the folder) that neither the folder nor the image meets."""
    image = image_packages() if image is None else image
    wheels = wheels_in(folder)
    wanted = [("condbench", r) for r in project_requirements() if applies(r)]
    wanted += [(w.name, r) for w in wheels.values() for r in w.requires]
    missing = []
    for who, requirement in wanted:
        name = canonicalize_name(requirement.name)
        if name in image and name not in wheels:
            continue  # the image's version is the one there; what it is, is read on the machine (gpu-check)
        wheel = wheels.get(name)
        if wheel is None:
            missing.append(f"{who} needs {requirement}: neither carried nor in the image")
        elif not requirement.specifier.contains(wheel.version, prereleases=True):
            missing.append(f"{who} needs {requirement}: carried {wheel.path.name}")
    return missing


def download(folder: Path, image: frozenset[str] | None = None, pip: list[str] | None = None) -> list[Wheel]:
    """Fetches, one requirement at a time and without their dependencies, every requirement the image lacks,
    until the folder's wheels and the image meet each other's requirements."""
    image = image_packages() if image is None else image
    pip = pip or [sys.executable, "-m", "pip"]
    folder.mkdir(parents=True, exist_ok=True)
    pending = [r for r in project_requirements() if applies(r) and canonicalize_name(r.name) not in image]
    while pending:
        requirement = pending.pop(0)
        have = wheels_in(folder)
        if canonicalize_name(requirement.name) in have:
            continue
        spec = f"{requirement.name}{requirement.specifier}"
        done = subprocess.run([*pip, "download", "-q", "--no-deps", *TARGET, "--dest", str(folder), spec],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise UserError(f"pip found no CPython {PYTHON} x86-64 wheel of {spec}: "
                            + last_line(done.stderr, "(no message)"))
        (fetched,) = [w for name, w in wheels_in(folder).items() if name not in have]
        pending += [r for r in fetched.requires if canonicalize_name(r.name) not in image - CARRIED_ANYWAY]
    return list(wheels_in(folder).values())


def pip_dry_run(folder: Path, pip: list[str] | None = None) -> subprocess.CompletedProcess:
    """pip's own verdict on the folder's wheels for CPython 3.12 on x86-64 Linux, installing nothing."""
    pip = pip or [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as target:
        return subprocess.run([*pip, "install", "--dry-run", "--no-index", "--no-deps", *TARGET, "--target", target,
                               *map(str, sorted(folder.glob("*.whl")))], capture_output=True, text=True, check=False)

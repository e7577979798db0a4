"""The wheel is what users get: every folder of the source tree must land in it, and only ledgerflow.

The root folders (core/, ingest/, ...) are mapped into the ``ledgerflow`` namespace by
pyproject.toml; a subpackage missing from its list silently vanishes from the wheel while the
source-tree tests keep passing. These tests build the wheel and look inside.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIRS: dict[str, str] = SETUPTOOLS["package-dir"]  # namespace -> folder
LISTED_PACKAGES: list[str] = SETUPTOOLS["packages"]
HEAVY_MODULES = ("duckdb", "fastapi", "uvicorn", "starlette", "kafka")


def source_packages() -> dict[str, Path]:
    """Every package the source tree holds: each folder with an __init__.py under a mapped root."""
    found: dict[str, Path] = {}
    for namespace, folder in PACKAGE_DIRS.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            found[".".join((namespace, *relative.parts))] = init.parent
    return found


def package_folder(package: str) -> Path:
    """The source folder of ``package`` under the most specific package-dir mapping."""
    best = max((ns for ns in PACKAGE_DIRS if package == ns or package.startswith(ns + ".")), key=len)
    rest = package[len(best):].lstrip(".")
    return REPO / PACKAGE_DIRS[best] / Path(*rest.split(".")) if rest else REPO / PACKAGE_DIRS[best]


def test_every_source_package_is_listed_in_pyproject() -> None:
    missing = sorted(set(source_packages()) - set(LISTED_PACKAGES))
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml or they miss the wheel: {missing}"


def test_every_listed_package_has_a_folder() -> None:
    for package in LISTED_PACKAGES:
        assert (package_folder(package) / "__init__.py").is_file(), f"{package}: no {package_folder(package)}/__init__.py"


def test_a_nested_root_folder_is_not_also_mapped_twice() -> None:
    """A folder reachable under two package names would be shipped twice, under the wrong one too."""
    folders = {}
    for package in source_packages():
        folder = package_folder(package)
        assert folder not in folders, f"{folder} is both {folders[folder]} and {package}"
        folders[folder] = package


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from a copy of the sources (building in place would race other builds)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for path in [REPO / "pyproject.toml", REPO / "README.md", *REPO.glob("LICENSE*")]:
        shutil.copy2(path, source / path.name)
    for folder in sorted(set(PACKAGE_DIRS.values())):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    if importlib.util.find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    wheels = list(out.glob("ledgerflow-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as archive:
        yield archive


def test_wheel_contains_every_subpackage_and_module(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package, folder in source_packages().items():
        prefix = package.replace(".", "/")
        for module in folder.glob("*.py"):
            assert f"{prefix}/{module.name}" in names, f"{prefix}/{module.name} is not in the wheel"


def test_wheel_contains_every_avro_schema_and_the_published_record(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    schemas = REPO / PACKAGE_DIRS["ledgerflow.schemas"]
    avsc = sorted(schemas.rglob("*.avsc"))
    assert avsc, "no .avsc files found in the source tree"
    for path in avsc:
        inside = "ledgerflow/schemas/" + path.relative_to(schemas).as_posix()
        assert inside in names, f"{inside} is not in the wheel"
    for path in schemas.glob("avro/*.json"):
        assert "ledgerflow/schemas/" + path.relative_to(schemas).as_posix() in names
    assert "ledgerflow/py.typed" in names


def test_wheel_installs_nothing_but_ledgerflow(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    strays = {t for t in top if t != "ledgerflow" and not t.endswith(".dist-info")}
    assert not strays, f"the wheel would install top-level modules besides ledgerflow: {sorted(strays)}"
    info = next(t for t in top if t.endswith(".dist-info"))
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert "ledgerflow = ledgerflow.cli:main" in entry_points


def test_suite_runs_against_the_installed_wheel() -> None:
    """``make test`` sets LEDGERFLOW_EXPECT_INSTALLED=wheel: the code under test must be the wheel's."""
    if os.environ.get("LEDGERFLOW_EXPECT_INSTALLED") != "wheel":
        pytest.skip("LEDGERFLOW_EXPECT_INSTALLED=wheel is set by `make test` only")
    import ledgerflow
    import ledgerflow.cli
    import ledgerflow.ingest
    import ledgerflow.schemas

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (ledgerflow, ledgerflow.cli, ledgerflow.ingest, ledgerflow.schemas):
        location = Path(module.__file__).resolve()
        assert location.is_relative_to(site_packages), f"{module.__name__} comes from {location}, not {site_packages}"
        assert not location.is_relative_to(REPO) or site_packages.is_relative_to(REPO)
    direct_url = next(site_packages.glob("ledgerflow-*.dist-info"), None)
    assert direct_url is not None
    if (direct_url / "direct_url.json").exists():
        info = json.loads((direct_url / "direct_url.json").read_text())
        assert not info.get("dir_info", {}).get("editable"), "an editable install, not the wheel"


def test_importing_the_schemas_pulls_in_no_database_web_or_kafka_client(tmp_path: Path) -> None:
    code = (
        "import sys, ledgerflow.schemas\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"import ledgerflow.schemas loaded {result.stdout.strip()}"

"""The layout's boundaries: a pure core, Faust inside the worker only, side-effect-free imports of
the operator surfaces and tools, and one top-level name once installed."""
import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)
FAUST = {"faust", "mode"}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", files("models"), ids=lambda p: p.name)
def test_the_core_imports_only_the_standard_library_river_numpy_and_itself(path):
    outside = {n for n in imports(path) if top(n) not in STDLIB | {"river", "numpy"}
               and not n.startswith("nextoffer.models")}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}: the core stays pure"


OUTSIDE_THE_WORKER = [p for folder in ("streams", "benchmarks") for p in files(folder)
                      if "worker" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("path", OUTSIDE_THE_WORKER, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_worker_package_imports_faust(path):
    faust = {n for n in imports(path) if top(n) in FAUST}
    assert not faust, f"{path.relative_to(ROOT)} imports {sorted(faust)}"


@pytest.mark.parametrize("path", OUTSIDE_THE_WORKER, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_worker_command_reaches_into_the_worker(path):
    """``nextoffer worker`` (ops/cli.py) starts the runtime; nothing else outside it imports it."""
    worker = {n for n in imports(path) if n.startswith("nextoffer.streams.worker")}
    allowed = {"nextoffer.streams.worker.app", "nextoffer.streams.worker.agents", "nextoffer.streams.worker.faust_internals",
               "nextoffer.streams.worker.supervisor"} if path == ROOT / "streams/ops/cli.py" else set()
    assert worker <= allowed, f"{path.relative_to(ROOT)} imports {sorted(worker - allowed)}"


def test_nothing_imports_the_source_folders_by_their_folder_names():
    for folder in ("models", "streams", "benchmarks", "tests"):
        for path in files(folder):
            bad = {n for n in imports(path) if top(n) in ("models", "streams", "benchmarks")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: use nextoffer.{sorted(bad)[0]}"


def _run_outside(code: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """Python code run from outside the source tree, with the installed package only."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**clean, **env})


SIDE_EFFECTS = r'''
import importlib, os, pathlib, pkgutil, socket, sys
def refuse(what):
    def hook(*args, **kwargs):
        raise AssertionError(f"{what} at import: {args[:2]}")
    return hook
socket.socket.connect = refuse("a network connection")
socket.create_connection = refuse("a network connection")
os.mkdir = os.makedirs = refuse("a folder created")
pathlib.Path.mkdir = refuse("a folder created")
from nextoffer.streams.io import settings
settings.Settings.from_env = classmethod(refuse("the environment read"))
import nextoffer.streams.ops, nextoffer.streams.tools
names = [m.name for pkg in (nextoffer.streams.ops, nextoffer.streams.tools)
         for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
assert not {"faust", "mode"} & set(sys.modules), "Faust was imported"
print(len(names), "modules")
'''


def test_importing_an_operator_surface_or_a_tool_builds_no_app_and_touches_nothing(tmp_path):
    out = _run_outside(SIDE_EFFECTS, tmp_path)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[0]) >= 10


def test_the_installed_package_imports_from_outside_the_tree_and_adds_one_top_level_name(tmp_path):
    out = _run_outside("import nextoffer.models.engine, nextoffer.streams.ops.cli, nextoffer.benchmarks.run\n"
                       "import importlib.util as u\n"
                       "print([n for n in ('models', 'streams', 'benchmarks') if u.find_spec(n)])", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_wheel_holds_only_the_nextoffer_package(tmp_path):
    """A plain ``pip install nextoffer`` adds ``nextoffer`` alone (and its dist-info)."""
    source = tmp_path / "source"     # a copy: building writes build/ beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("models", "streams", "benchmarks"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("nextoffer-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"nextoffer"}
    assert "nextoffer/streams/ops/dashboard.html" in names
    assert "nextoffer/streams/io/schema/contract.schema.json" in names
    assert "nextoffer/streams/worker/agents.py" in names and "nextoffer/models/policy.py" in names


FAUST_INTERNALS = ("_committed_offset", "_thread", "_paused_partitions", "_buffered_partitions",
                   "_active_partitions", "_ensure_consumer", "_to_value", "_changelog_name")


@pytest.mark.parametrize("path", [p for p in files("streams") if p.name != "faust_internals.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_faust_internals_are_used_in_one_module_only(path):
    used = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)
            and node.attr in FAUST_INTERNALS}
    assert not used, f"{path.relative_to(ROOT)} uses Faust internals {sorted(used)}: keep them in " \
                     "streams/worker/faust_internals.py"

"""Distribution names that differ from manifest names, for every source type (issue 13).

The design's own example, end to end: the manifest ``vlm-adapter-qwen`` whose prod
source is the git repository ``qwen-adapter`` building the project ``qwen-adapter``,
whose module is ``api_wrapper``. Lock, run (and the warm start), entrypoint, smoke,
dev checkout, editable run and pin, all through the CLI with real git, uv and venvs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.factory import git, git_commit_all, git_tag, make_git_repo, make_project
from tests.support.world import World, uv_calls, world

__all__ = ["world"]

API_WRAPPER = {
    "api_wrapper/__init__.py": 'VALUE = "released"\n',
    "api_wrapper/serve.py": (
        "import sys\nimport api_wrapper\nprint('serving', api_wrapper.VALUE, ' '.join(sys.argv[1:]))\n"
    ),
    "api_wrapper/models/__init__.py": "",
    "api_wrapper/models/qwen2_vl.py": "NAME = 'qwen2-vl'\n",
}

QWEN = """\
name: vlm-adapter-qwen
version: 0.2.0
description: Adapter for Qwen2-VL models
sources:
  prod: {{type: git, url: "{url}", ref: v0.2.0}}
  dev:  {{type: local, path: ../checkouts/qwen-adapter, editable: true}}
entrypoints:
  serve: "python -m api_wrapper.serve --port 8001"
  smoke: "python -c 'import api_wrapper.models.qwen2_vl'"
"""


@pytest.fixture(autouse=True)
def private_cache(world: World) -> None:
    """hpm's cache of discovered names in the test's own directory, not in ~/.cache/hpm."""
    world.env["HPM_CACHE"] = str(world.tmp / "hpm-cache")


@pytest.fixture
def qwen(world: World) -> Path:
    """The git repository qwen-adapter (project qwen-adapter, module api_wrapper), and its manifest."""
    repo = make_git_repo(world.tmp / "git" / "qwen-adapter", "qwen-adapter", deps=["hpmtest-core>=1"],
                         modules=API_WRAPPER, tags=["v0.2.0"])
    world.manifest("vlm-adapter-qwen", QWEN.format(url=repo.url))
    return repo.path


def test_design_example_end_to_end(world: World, qwen: Path) -> None:
    cache: dict[str, str] = {}
    lock = world.lock("vlm-adapter-qwen")
    data = json.loads(lock.read_text())
    (pkg,) = data["packages"]
    assert pkg["name"] == "vlm-adapter-qwen" and pkg["distribution"] == "qwen-adapter"
    assert pkg["requirement"].startswith("qwen-adapter @ git+")
    assert {p["name"] for p in data["pins"]} == {"qwen-adapter", "hpmtest-core"}

    proc = world.hpm("decode", "--from", lock)
    assert proc.returncode == 0 and "vlm-adapter-qwen  0.2.0    qwen-adapter" in proc.stdout, proc.stdout

    env = {"HPM_VENV": str(world.tmp / "venv"), **cache}
    proc = world.hpm("run", "--lock", lock, *world.index(), "--entrypoint", "serve", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "serving released --port 8001\n"
    # the warm start sees qwen-adapter installed: no installer at all
    forbid, marker = world.forbidden_env()
    proc = world.hpm("run", "--lock", lock, "--entrypoint", "serve", env={**env, **forbid})
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists() and "already installed" in proc.stderr

    junit = world.tmp / "smoke.xml"
    proc = world.hpm("smoke", "--lock", lock, *world.index(), "--junit", junit, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout and "2 passed" in proc.stdout
    assert "api_wrapper -&gt; " in junit.read_text(), junit.read_text()  # qwen-adapter's module, from RECORD

    # plan and why show the distribution found when locking (the URL names it too: check the column)
    proc = world.hpm("plan", "-r", world.registry, "--with", "vlm-adapter-qwen", env=cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].split()[:3] == ["vlm-adapter-qwen", "0.2.0", "qwen-adapter"]
    proc = world.hpm("why", "vlm-adapter-qwen", "-r", world.registry, "--with", "vlm-adapter-qwen",
                     env=cache)
    assert proc.returncode == 0, proc.stderr
    assert "vlm-adapter-qwen installs the distribution qwen-adapter" in proc.stdout

    # dev: check the repository out, run it editable, edit it, pin a new tag
    proc = world.hpm("dev", "checkout", "vlm-adapter-qwen", "-r", world.registry)
    assert proc.returncode == 0, proc.stderr
    checkout = world.tmp / "checkouts" / "qwen-adapter"
    assert "qwen-adapter" in proc.stdout  # it says what the checkout builds
    dev = {"HPM_VENV": str(world.tmp / "dev"), "RUN_MODE": "dev", **cache}
    reg = ("-r", world.registry, "--with", "vlm-adapter-qwen", *world.index())
    proc = world.hpm("run", *reg, "--entrypoint", "serve", env=dev)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "serving released --port 8001\n"
    (checkout / "api_wrapper" / "__init__.py").write_text('VALUE = "edited"\n')
    proc = world.hpm("run", *reg, "--entrypoint", "serve", env=dev)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "serving edited --port 8001\n"  # editable: the edit is live
    proc = world.hpm("smoke", *reg, env=dev)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    proc = world.hpm("dev", "status", "-r", world.registry, "--mode", "dev", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["name"] == "vlm-adapter-qwen" and row["distribution"] == "qwen-adapter"

    git_commit_all(checkout, "edited")
    git_tag(checkout, "v0.3.0")
    proc = world.hpm("dev", "pin", "vlm-adapter-qwen", "-r", world.registry)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ref: v0.3.0" in (world.registry / "vlm-adapter-qwen.yaml").read_text()



def test_name_discovery_is_cached_by_commit(world: World, qwen: Path) -> None:
    """The second lock of the same commit asks uv for no name: one compile, not two."""
    uv, log = world.counting_uv()
    env = {"HPM_UV": str(uv)}
    for _ in range(2):
        proc = world.hpm("lock", "-r", world.registry, "--with", "vlm-adapter-qwen", *world.index(),
                         "-o", world.tmp / "lock.json", env=env)
        assert proc.returncode == 0, proc.stderr
    compiles = uv_calls(log, "pip compile")
    # the name once; then, for each lock, one compile of the pins and their files (pylock.toml)
    assert len(compiles) == 3 and "--no-deps" in compiles[0], compiles
    assert not any("--no-deps" in c for c in compiles[1:])
    assert all("--format pylock.toml" in c for c in compiles[1:])


def _source_manifest(world: World, source: str, package: str | None = None) -> None:
    project = make_project(world.tmp / "src" / "qwen-adapter", "qwen-adapter", "0.2.0", modules=API_WRAPPER)
    pkgline = f", package: {package}" if package else ""
    if source == "url":
        from tests.support.factory import build_wheel

        wheel = build_wheel(project, world.tmp / "dist")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        spec = f'{{type: url, url: "{wheel.as_uri()}", sha256: {digest}{pkgline}}}'
    elif source == "local":
        spec = f'{{type: local, path: ../src/qwen-adapter, editable: false{pkgline}}}'
    elif source == "editable":
        spec = f'{{type: local, path: ../src/qwen-adapter, editable: true{pkgline}}}'
    else:
        git(project, "init", "-q", "-b", "main")
        git_commit_all(project, "qwen-adapter 0.2.0")
        git_tag(project, "v0.2.0")
        spec = f'{{type: git, url: "{project.as_uri()}", ref: v0.2.0{pkgline}}}'
    world.manifest("qwen", f"name: qwen\nversion: 0.2.0\nsources:\n  prod: {spec}\n")


@pytest.mark.parametrize("source", ["git", "url", "local", "editable"])
def test_every_source_type_finds_its_distribution(world: World, source: str) -> None:
    _source_manifest(world, source)
    env = {"HPM_VENV": str(world.tmp / "venv")}
    proc = world.hpm("run", "-r", world.registry, "--with", "qwen", *world.index(), "--",
                     "python", "-m", "api_wrapper.serve", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("serving released")
    lock = world.lock("qwen")
    assert json.loads(lock.read_text())["packages"][0]["distribution"] == "qwen-adapter"


@pytest.mark.parametrize("source", ["git", "url", "local", "editable"])
def test_a_package_that_disagrees_with_the_metadata_is_65(world: World, source: str) -> None:
    _source_manifest(world, source, package="qwen")
    proc = world.hpm("lock", "-r", world.registry, "--with", "qwen", *world.index())
    assert proc.returncode == 65, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("hpm: error: qwen: ") and "'qwen'" in first and "'qwen-adapter'" in first, first
    assert "qwen.yaml" in first and "Traceback" not in proc.stderr


def test_a_matching_package_is_accepted(world: World) -> None:
    _source_manifest(world, "git", package="Qwen_Adapter")
    lock = world.lock("qwen")
    (pkg,) = json.loads(lock.read_text())["packages"]
    assert pkg["distribution"] == "qwen-adapter"


@pytest.mark.parametrize("kind", ["editable", "local", "git"])
def test_a_source_that_builds_nothing_is_65(world: World, kind: str) -> None:
    empty = world.tmp / "src" / "empty"
    empty.mkdir(parents=True)
    (empty / "README").write_text("no project here\n")
    if kind == "git":
        git(empty, "init", "-q", "-b", "main")
        git_commit_all(empty, "docs only")
        git_tag(empty, "v1.0.0")
        spec = f'{{type: git, url: "{empty.as_uri()}", ref: v1.0.0}}'
    else:
        spec = f"{{type: local, path: ../src/empty, editable: {str(kind == 'editable').lower()}}}"
    world.manifest("hollow", f"name: hollow\nversion: 1.0.0\nsources:\n  prod: {spec}\n")
    proc = world.hpm("lock", "-r", world.registry, "--with", "hollow", *world.index())
    assert proc.returncode == 65, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "hollow" in first and "src/empty" in first and "no pyproject.toml" in first, first
    assert "Traceback" not in proc.stderr


def test_ephemeral_environments_use_the_distribution(world: World, qwen: Path) -> None:
    proc = world.hpm("run", "--ephemeral", "-r", world.registry, "--with", "vlm-adapter-qwen", *world.index(),
                     "--entrypoint", "serve", env={"HPM_EPHEMERAL_DIR": str(world.tmp / "eph")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("serving released --port 8001\n")
    (project,) = (world.tmp / "eph").glob("*/pyproject.toml")
    assert "qwen-adapter = { git = " in project.read_text()


def test_an_invalid_package_name_is_65_with_file_and_line(world: World) -> None:
    world.manifest("qwen", 'name: qwen\nversion: 0.2.0\nsources:\n'
                   '  prod: {type: git, url: "file:///nowhere", ref: v1, package: "qwen adapter!"}\n')
    for argv in (("plan", "--with", "qwen"), ("validate",)):
        proc = world.hpm(*argv, "-r", world.registry)
        assert proc.returncode == 65, proc.stderr
        text = proc.stdout + proc.stderr
        assert "qwen.yaml:4: sources.prod.package: invalid distribution name 'qwen adapter!'" in text, text

"""Proof that the hermetic test toolkit works: wheels, git repos, venvs and uv, offline."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.support import factory
from tests.support.factory import (
    GitRepo,
    Pkg,
    build_sdist,
    build_wheel,
    git,
    make_git_repo,
    make_project,
    make_wheelhouse,
    run_uv,
)

installer = pytest.mark.slow  # runs the real uv


def py(python: Path, code: str) -> str:
    """Run ``code`` with ``python`` (outside this repo, so nothing leaks via cwd)."""
    out = subprocess.run(
        [os.fspath(python), "-c", code], capture_output=True, text=True, cwd=python.parent
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def direct_url(python: Path, dist: str) -> dict | None:
    code = (
        "import importlib.metadata as m, sys\n"
        f"t = m.distribution({dist!r}).read_text('direct_url.json')\n"
        "sys.stdout.write(t or 'null')"
    )
    return json.loads(py(python, code))


def install(python: Path, wheelhouse: Path, *reqs: str | Path) -> str:
    proc = run_uv(
        "pip", "install", "--python", python, "--no-index", "--find-links", wheelhouse, *reqs
    )
    return proc.stderr


# --------------------------------------------------------------------------- no uv needed


def test_wheel_is_valid_and_reproducible(tmp_path: Path) -> None:
    proj = make_project(
        tmp_path / "proj",
        "Hpmtest.Mixed_Name",
        "0.3.0",
        deps=["hpmtest-core>=1"],
        scripts={"mixed": "hpmtest_mixed_name:main"},
        extras={"x": ["hpmtest-dep; python_version >= '3'"]},
    )
    first = build_wheel(proj, tmp_path / "a")
    second = build_wheel(proj, tmp_path / "b")
    assert first.name == "hpmtest_mixed_name-0.3.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        info = "hpmtest_mixed_name-0.3.0.dist-info"
        assert names[-1] == f"{info}/RECORD"
        assert "hpm_test_backend.py" not in names
        meta = zf.read(f"{info}/METADATA").decode()
        assert "Name: Hpmtest.Mixed_Name" in meta
        assert "Requires-Dist: hpmtest-core>=1" in meta
        assert "Requires-Dist: hpmtest-dep; (python_version >= '3') and extra == \"x\"" in meta
        assert "mixed = hpmtest_mixed_name:main" in zf.read(f"{info}/entry_points.txt").decode()
        for line in zf.read(f"{info}/RECORD").decode().splitlines():
            path, digest, size = line.split(",")
            if path.endswith("RECORD"):
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}"
            assert int(size) == len(data)


def test_minimal_toml_parser_matches_tomllib(tmp_path: Path) -> None:
    tomllib = pytest.importorskip("tomllib")
    proj = make_project(
        tmp_path / "p",
        "hpmtest-x",
        deps=['a>=1; python_version < "4"', "b"],
        scripts={"x": "x:main"},
        extras={"e": ["c"]},
        requires_python=">=3.10",
    )
    text = (proj / "pyproject.toml").read_text()
    assert factory.backend._parse_toml_minimal(text) == tomllib.loads(text)


def test_make_wheelhouse_of_fifty_is_fast(tmp_path: Path) -> None:
    specs = [
        (f"bench-pkg-{i}", "1.0.0", [f"bench-pkg-{i + 1}"] if i < 49 else []) for i in range(50)
    ]
    start = time.perf_counter()
    wh = make_wheelhouse(tmp_path / "wh", specs)
    assert time.perf_counter() - start < 2.0
    assert len(list(wh.glob("*.whl"))) == 50


def test_spec_forms() -> None:
    assert factory._as_pkg("a==2.0") == Pkg("a", "2.0")
    assert factory._as_pkg(("a", "1.0", ["b"])) == Pkg("a", "1.0", ["b"])


def test_git_repo_is_deterministic_and_tags_resolve(tmp_path: Path) -> None:
    one = make_git_repo(tmp_path / "one", "hpmtest-g", tags=["v0.1.0", "v0.2.0"])
    two = make_git_repo(tmp_path / "two", "hpmtest-g", tags=["v0.1.0", "v0.2.0"])
    assert one.tags == two.tags
    assert len(one.tags["v0.1.0"]) == 40
    assert 'version = "0.2.0"' in (one.path / "pyproject.toml").read_text()
    assert git(one.path, "show", "v0.1.0:pyproject.toml").count('version = "0.1.0"') == 1

    ann = make_git_repo(tmp_path / "ann", "hpmtest-a", tags=["v1.0.0"], annotated=True)
    lines = git(ann.path, "ls-remote", ann.url, "refs/tags/v1.0.0", "refs/tags/v1.0.0^{}")
    refs = {ref: sha for sha, ref in (line.split("\t") for line in lines.splitlines())}
    assert refs["refs/tags/v1.0.0^{}"] == ann.tags["v1.0.0"]  # peeled = commit
    assert refs["refs/tags/v1.0.0"] != ann.tags["v1.0.0"]  # tag object

    sha = factory.git_commit_all(one.path, "empty")
    assert factory.git_tag(one.path, "v0.3.0") == sha


def test_hermetic_environment(uv_env: dict[str, str]) -> None:
    assert os.environ["UV_OFFLINE"] == "1"
    assert os.environ["UV_NO_CONFIG"] == "1"
    assert os.environ["UV_CACHE_DIR"] == uv_env["UV_CACHE_DIR"]
    assert not any(k.startswith("PIP_") for k in os.environ)
    assert "VIRTUAL_ENV" not in os.environ


# --------------------------------------------------------------------------- with uv


@installer
def test_install_from_wheelhouse(venv: Path, wheelhouse: Path) -> None:
    log = install(venv, wheelhouse, "hpmtest-app", "hpmtest-qdrant", "hpmtest-extra[fast]")
    assert "hpmtest-core==1.1.0" in log  # highest version allowed by qdrant's <2
    code = "import hpmtest_app, hpmtest_core, hpmtest_dep; print(hpmtest_core.__version__)"
    assert py(venv, code) == "1.1.0"
    script = venv.parent / "hpmtest-app"
    out = subprocess.run([script, "hello"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hpmtest-app hello"
    assert direct_url(venv, "hpmtest-core") is None  # from --find-links: no direct_url.json


@installer
def test_missing_package_fails(venv: Path, wheelhouse: Path) -> None:
    proc = run_uv(
        "pip", "install", "--python", venv, "--no-index", "--find-links", wheelhouse,
        "hpmtest-nope", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "hpmtest-nope was not found" in proc.stderr


@installer
def test_install_git_at_tag(venv: Path, wheelhouse: Path, git_plugin: GitRepo) -> None:
    install(venv, wheelhouse, git_plugin.requirement("hpmtest-gitplugin", "v0.1.0"))
    assert py(venv, "import hpmtest_gitplugin as m; print(m.__version__)") == "0.1.0"
    info = direct_url(venv, "hpmtest-gitplugin")
    assert info == {
        "url": git_plugin.url,
        "vcs_info": {
            "vcs": "git",
            "commit_id": git_plugin.tags["v0.1.0"],
            "requested_revision": "v0.1.0",
        },
    }
    install(
        venv, wheelhouse, git_plugin.requirement("hpmtest-gitplugin", git_plugin.tags["v0.2.0"])
    )
    assert py(venv, "import hpmtest_gitplugin as m; print(m.__version__)") == "0.2.0"


@installer
def test_editable_install_sees_edits(venv: Path, wheelhouse: Path, tmp_path: Path) -> None:
    mod = {"hpmtest_live/__init__.py": "VALUE = 1\n"}
    proj = make_project(tmp_path / "live", "hpmtest-live", "0.1.0", ["hpmtest-dep"], mod)
    install(venv, wheelhouse, "-e", proj)
    assert py(venv, "import hpmtest_live; print(hpmtest_live.VALUE)") == "1"
    (proj / "hpmtest_live" / "__init__.py").write_text("VALUE = 2\n")
    assert py(venv, "import hpmtest_live; print(hpmtest_live.VALUE)") == "2"
    assert direct_url(venv, "hpmtest-live") == {
        "url": proj.resolve().as_uri(),
        "dir_info": {"editable": True},
    }


@installer
def test_sdist_installs(venv: Path, wheelhouse: Path, tmp_path: Path) -> None:
    proj = make_project(tmp_path / "s", "hpmtest-sdist", "0.5.0", ["hpmtest-core==1.0.0"])
    sdist = build_sdist(proj, tmp_path / "dist")
    assert sdist.read_bytes() == build_sdist(proj, tmp_path / "dist2").read_bytes()
    install(venv, wheelhouse, sdist)
    assert py(venv, "import hpmtest_sdist, hpmtest_core as c; print(c.__version__)") == "1.0.0"


@installer
def test_compile_pins_hashes_and_git_shas(
    wheelhouse: Path, git_plugin: GitRepo, tmp_path: Path
) -> None:
    req = git_plugin.requirement("hpmtest-gitplugin", "v0.2.0")
    proc = run_uv(
        "pip", "compile", "-", "--no-index", "--find-links", wheelhouse, "--generate-hashes",
        "--no-header", "--no-annotate", "--python", sys.executable,
        input=f"{req}\nhpmtest-qdrant\n",
    )  # fmt: skip
    lines = proc.stdout.split("\n")
    assert f"{git_plugin.requirement('hpmtest-gitplugin', git_plugin.tags['v0.2.0'])}" in lines
    assert "hpmtest-core==1.1.0 \\" in lines
    assert proc.stdout.count("--hash=sha256:") == 2  # core and qdrant; git has none

"""Shared pytest fixtures: hermetic uv environment, a wheelhouse, git plugins, venvs.

Every test runs with uv isolated from the network and from the user's configuration
(``hermetic_uv``, autouse). Helpers live in :mod:`tests.support.factory`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.factory import (
    DEFAULT_PACKAGES,
    GitRepo,
    hermetic_env,
    make_git_repo,
    make_venv,
    make_wheelhouse,
)
from tests.support.factory import uv_bin as find_uv


@pytest.fixture(scope="session")
def uv_bin() -> Path:
    """Path of the uv executable (skips the test when uv is missing)."""
    try:
        return find_uv()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def uv_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uv cache private to this test session."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def uv_env(uv_cache_dir: Path) -> dict[str, str]:
    """A complete environment for running uv hermetically (see ``hermetic_env``)."""
    return hermetic_env(uv_cache_dir)


@pytest.fixture(autouse=True)
def hermetic_uv(uv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Apply ``uv_env`` to ``os.environ`` for every test: offline, private cache, no config."""
    for key in list(os.environ):
        if key not in uv_env:
            monkeypatch.delenv(key)
    for key, value in uv_env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of tiny wheels (``DEFAULT_PACKAGES``): hpmtest-core 1.0.0/1.1.0/2.0.0,
    hpmtest-dep, hpmtest-qdrant (-> core>=1,<2), hpmtest-milvus (-> core, dep),
    hpmtest-app (-> core, console script ``hpmtest-app``), hpmtest-extra[fast] (-> dep).
    Use with ``--no-index --find-links``. Read-only: do not add files to it."""
    return make_wheelhouse(tmp_path_factory.mktemp("wheelhouse"), DEFAULT_PACKAGES)


@pytest.fixture
def git_plugin(tmp_path: Path) -> GitRepo:
    """A fresh local git repo of ``hpmtest-gitplugin`` (-> hpmtest-core>=1.0) with tags
    v0.1.0 and v0.2.0 (lightweight; version in the tree matches the tag), branch main."""
    return make_git_repo(
        tmp_path / "hpmtest-gitplugin",
        "hpmtest-gitplugin",
        deps=["hpmtest-core>=1.0"],
        tags=["v0.1.0", "v0.2.0"],
    )


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    """A fresh empty venv (made by ``uv venv``); yields its interpreter path."""
    yield make_venv(tmp_path / "venv")

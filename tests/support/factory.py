"""Hermetic fixtures for end-to-end tests: source trees, wheels, git repos, venvs, uv.

Everything here works offline. Packages are built by the in-tree backend
``tests/support/backend/hpm_test_backend.py`` (standard library only), in-process, so a
wheelhouse of fifty packages takes a fraction of a second. Git repositories get fixed
author, committer and dates, so the same content always yields the same commit SHAs.

Typical use::

    wh = make_wheelhouse(tmp / "wh", [("hpmtest-core", "1.0.0"), Pkg("hpmtest-app", "1.0.0",
                         deps=["hpmtest-core>=1"])])
    py = make_venv(tmp / "venv")
    run_uv("pip", "install", "--python", py, "--no-index", "--find-links", wh, "hpmtest-app")
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

BACKEND_SOURCE = Path(__file__).parent / "backend" / "hpm_test_backend.py"
GIT_DATE_BASE = 1_700_000_000  # fixed epoch seconds; commit N is dated BASE + N minutes
GIT_USER = ("hpm tests", "tests@hpm.invalid")

StrPath = str | os.PathLike[str]

__all__ = [
    "BACKEND_SOURCE",
    "DEFAULT_PACKAGES",
    "GitRepo",
    "Pkg",
    "build_editable",
    "build_sdist",
    "build_wheel",
    "git",
    "git_commit_all",
    "git_env",
    "git_tag",
    "hermetic_env",
    "import_name",
    "make_git_repo",
    "make_project",
    "make_pypi_like",
    "make_simple_index",
    "make_venv",
    "make_wheelhouse",
    "normalize",
    "run_uv",
    "uv_bin",
    "venv_python",
]


def _load_backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hpm_test_backend", BACKEND_SOURCE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


backend = _load_backend()


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_name(name: str) -> str:
    """The default top-level package of a project: ``hpmtest-core`` -> ``hpmtest_core``."""
    return re.sub(r"[-_.]+", "_", name).lower()


# --------------------------------------------------------------------------- projects


@dataclass(frozen=True)
class Pkg:
    """A package to build: metadata plus code (default: ``<import_name>/__init__.py``
    with ``__version__`` and ``NAME``)."""

    name: str
    version: str = "1.0.0"
    deps: Sequence[str] = ()
    modules: Mapping[str, str] | None = None
    scripts: Mapping[str, str] = field(default_factory=dict)
    extras: Mapping[str, Sequence[str]] = field(default_factory=dict)
    requires_python: str | None = None

    def project(self) -> dict[str, Any]:
        """The ``[project]`` table."""
        table: dict[str, Any] = {"name": self.name, "version": self.version}
        table["dependencies"] = list(self.deps)
        if self.requires_python:
            table["requires-python"] = self.requires_python
        if self.extras:
            table["optional-dependencies"] = {k: list(v) for k, v in self.extras.items()}
        if self.scripts:
            table["scripts"] = dict(self.scripts)
        return table

    def files(self) -> dict[str, str]:
        if self.modules is not None:
            return dict(self.modules)
        return {
            f"{import_name(self.name)}/__init__.py": (
                f'NAME = "{self.name}"\n__version__ = "{self.version}"\n'
            )
        }


PkgLike = Pkg | str | tuple


def _as_pkg(spec: PkgLike) -> Pkg:
    """``Pkg``, ``"name==1.0"``, ``"name"``, ``(name, version)`` or ``(name, version, deps)``."""
    if isinstance(spec, Pkg):
        return spec
    if isinstance(spec, str):
        name, _, version = spec.partition("==")
        return Pkg(name.strip(), version.strip() or "1.0.0")
    return Pkg(*spec)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"unsupported TOML value {value!r}")


def _pyproject(pkg: Pkg) -> str:
    table = pkg.project()
    out = [
        "[build-system]",
        "requires = []",
        'build-backend = "hpm_test_backend"',
        'backend-path = ["."]',
        "",
        "[project]",
    ]
    out += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key in ("optional-dependencies", "scripts"):
        if key in table:
            out += ["", f"[project.{key}]"]
            out += [f'"{k}" = {_toml_value(v)}' for k, v in table[key].items()]
    return "\n".join(out) + "\n"


def make_project(
    dir: StrPath,
    name: str,
    version: str = "1.0.0",
    deps: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    *,
    scripts: Mapping[str, str] | None = None,
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
) -> Path:
    """Write a buildable source tree into ``dir`` (created) and return it.

    ``modules`` maps relative paths to file contents (default: a package named after the
    project exposing ``NAME`` and ``__version__``). ``scripts`` are console scripts,
    ``{"cmd": "pkg.mod:func"}``. Rewriting an existing project updates its files in place.
    """
    pkg = Pkg(name, version, tuple(deps), modules, scripts or {}, extras or {}, requires_python)
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(_pyproject(pkg), encoding="utf-8")
    shutil.copyfile(BACKEND_SOURCE, root / BACKEND_SOURCE.name)
    for rel, text in pkg.files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def build_wheel(project_dir: StrPath, wheelhouse: StrPath) -> Path:
    """Build a wheel of ``project_dir`` into ``wheelhouse`` (in-process) and return it."""
    name = backend._build(project_dir, os.fspath(wheelhouse), editable=False)
    return Path(wheelhouse, name)


def build_editable(project_dir: StrPath, wheelhouse: StrPath) -> Path:
    """Build a PEP 660 editable wheel (a ``.pth`` naming ``project_dir``)."""
    name = backend._build(project_dir, os.fspath(wheelhouse), editable=True)
    return Path(wheelhouse, name)


def build_sdist(project_dir: StrPath, dist_dir: StrPath) -> Path:
    """Build a reproducible sdist of ``project_dir`` into ``dist_dir``."""
    cwd = os.getcwd()
    try:  # the PEP 517 hook builds the current directory
        os.chdir(project_dir)
        name = backend.build_sdist(os.path.abspath(os.path.join(cwd, dist_dir)))
    finally:
        os.chdir(cwd)
    return Path(cwd, dist_dir, name)


def make_wheelhouse(dir: StrPath, specs: Iterable[PkgLike]) -> Path:
    """Build one wheel per spec straight into ``dir`` (no source trees) and return ``dir``.

    A spec is a :class:`Pkg`, ``"name==version"``, ``(name, version)`` or
    ``(name, version, deps)``.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        pkg = _as_pkg(spec)
        backend.write_wheel(pkg.project(), dict(pkg.files()), root)
    return root


#: the interpreters and platforms of a PyPI-like wheelhouse: 5 x 12 = 60 wheels a version
PYPI_PYTHONS: tuple[str, ...] = ("cp310", "cp311", "cp312", "cp313", "cp314")
PYPI_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_aarch64",
    "manylinux_2_28_aarch64", "musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "macosx_11_0_arm64",
    "macosx_10_12_x86_64", "win_amd64", "win_arm64", "win32", "manylinux_2_39_x86_64",
)


def make_pypi_like(dir: StrPath, specs: Iterable[PkgLike], pythons: Sequence[str] = PYPI_PYTHONS,
                   platforms: Sequence[str] = PYPI_PLATFORMS, sdist: bool = True) -> Path:
    """A wheelhouse that looks like PyPI: every spec as one wheel per interpreter and
    platform (``pythons`` x ``platforms``: 60 files by default) plus an sdist, each file's
    bytes different (its zip comment names it), so every file has its own sha256.

    The wheels are renamed copies of one pure-Python wheel: installers go by the file
    name's tags. Returns ``dir``.
    """
    import tarfile
    import zipfile

    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / ".build"
    for spec in specs:
        pkg = _as_pkg(spec)
        built = Path(backend.write_wheel(pkg.project(), dict(pkg.files()), scratch))
        built = built if built.is_absolute() else scratch / built
        stem = built.name.split("-py3-")[0]
        for py in pythons:
            for plat in platforms:
                dest = root / f"{stem}-{py}-{py}-{plat}.whl"
                shutil.copyfile(built, dest)
                with zipfile.ZipFile(dest, "a") as z:
                    z.comment = dest.name.encode()
        if sdist:
            base = f"{stem}"
            tar = root / f"{base}.tar.gz"
            info_dir = scratch / base
            info_dir.mkdir(parents=True, exist_ok=True)
            (info_dir / "PKG-INFO").write_text(
                f"Metadata-Version: 2.1\nName: {pkg.name}\nVersion: {pkg.version}\n"
                + "".join(f"Requires-Dist: {d}\n" for d in pkg.deps))
            with tarfile.open(tar, "w:gz") as t:
                t.add(info_dir, arcname=base)
        built.unlink()
    shutil.rmtree(scratch, ignore_errors=True)
    return root


def make_simple_index(wheelhouse: StrPath, dir: StrPath) -> str:
    """A PEP 503 simple index at ``dir`` of the files of ``wheelhouse`` (copied), each link
    with its ``#sha256=``, as PyPI serves them; returns its ``file://`` URL (uv reads it
    like any index)."""
    import hashlib

    root = Path(dir)
    files_dir = root / "files"
    shutil.copytree(wheelhouse, files_dir)
    by_dist: dict[str, list[Path]] = {}
    for f in sorted(files_dir.iterdir()):
        if f.is_file():
            by_dist.setdefault(normalize(f.name.split("-")[0]), []).append(f)
    for dist, files in by_dist.items():
        page = root / "simple" / dist / "index.html"
        page.parent.mkdir(parents=True)
        links = "".join(f'<a href="../../files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">'
                        f"{f.name}</a>\n" for f in files)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    (root / "simple" / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n" + "".join(f'<a href="{d}/">{d}</a>\n' for d in by_dist)
        + "</body></html>\n")
    return (root / "simple").as_uri()


# The packages of the session ``wheelhouse`` fixture.
DEFAULT_PACKAGES: tuple[Pkg, ...] = (
    Pkg("hpmtest-core", "1.0.0"),
    Pkg("hpmtest-core", "1.1.0"),
    Pkg("hpmtest-core", "2.0.0"),
    Pkg("hpmtest-dep", "1.0.0"),
    Pkg("hpmtest-qdrant", "0.1.0", deps=("hpmtest-core>=1.0,<2",)),
    Pkg("hpmtest-milvus", "0.1.0", deps=("hpmtest-core>=1.0", "hpmtest-dep")),
    Pkg(
        "hpmtest-app",
        "1.0.0",
        deps=("hpmtest-core>=1.0",),
        modules={
            "hpmtest_app/__init__.py": 'NAME = "hpmtest-app"\n__version__ = "1.0.0"\n',
            "hpmtest_app/cli.py": (
                "import sys\n\n\ndef main():\n"
                '    print("hpmtest-app", " ".join(sys.argv[1:]))\n    return 0\n'
            ),
            "hpmtest_app/__main__.py": (
                "import sys\n\nfrom hpmtest_app.cli import main\n\nsys.exit(main())\n"
            ),
        },
        scripts={"hpmtest-app": "hpmtest_app.cli:main"},
    ),
    Pkg("hpmtest-extra", "1.0.0", extras={"fast": ("hpmtest-dep>=1",)}),
)


# --------------------------------------------------------------------------- git


class GitRepo(NamedTuple):
    """A local git repository: its path and ``{tag: full commit sha}``."""

    path: Path
    tags: dict[str, str]

    @property
    def url(self) -> str:
        """``file://`` URL, as used in ``name @ git+file:///...@TAG``."""
        return self.path.resolve().as_uri()

    def requirement(self, name: str, ref: str) -> str:
        """``name @ git+file:///path@ref``."""
        return f"{name} @ git+{self.url}@{ref}"


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git: no user or system config, fixed identity."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME=GIT_USER[0],
        GIT_AUTHOR_EMAIL=GIT_USER[1],
        GIT_COMMITTER_NAME=GIT_USER[0],
        GIT_COMMITTER_EMAIL=GIT_USER[1],
        GIT_TERMINAL_PROMPT="0",
    )
    env.update(extra or {})
    return env


def git(repo: StrPath, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``git -C repo ARGS``; return stripped stdout; raise on failure."""
    proc = subprocess.run(
        ["git", "-C", os.fspath(repo), *args],
        env=git_env(env),
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


def _next_date(repo: StrPath) -> dict[str, str]:
    try:
        count = int(git(repo, "rev-list", "--count", "HEAD"))
    except RuntimeError:  # no commits yet
        count = 0
    date = f"{GIT_DATE_BASE + 60 * count} +0000"
    return {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def git_commit_all(repo: StrPath, msg: str) -> str:
    """Stage everything and commit with a deterministic date; return the full SHA."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", msg, env=_next_date(repo))
    return git(repo, "rev-parse", "HEAD")


def git_tag(repo: StrPath, tag: str, *, annotated: bool = False, ref: str = "HEAD") -> str:
    """Tag ``ref`` (lightweight, or annotated with a fixed date); return the commit SHA."""
    if annotated:
        git(repo, "tag", "-a", tag, "-m", f"release {tag}", ref, env=_next_date(repo))
    else:
        git(repo, "tag", tag, ref)
    return git(repo, "rev-parse", f"{tag}^{{commit}}")


def make_git_repo(
    dir: StrPath,
    name: str,
    version: str = "0.1.0",
    deps: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    tags: Sequence[str] = ("v0.1.0",),
    *,
    annotated: bool = False,
    scripts: Mapping[str, str] | None = None,
) -> GitRepo:
    """A git repo (branch ``main``) holding a project, one commit per tag.

    For each tag, the project is rewritten with the version the tag names (``v0.2.0`` ->
    ``0.2.0``; a tag without a version keeps ``version``), committed and tagged. With no
    tags, one commit is made. SHAs are deterministic for the same arguments.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for key, value in (
        ("user.name", GIT_USER[0]),
        ("user.email", GIT_USER[1]),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ):
        git(root, "config", key, value)
    shas: dict[str, str] = {}
    for tag in tags or (None,):
        match = re.fullmatch(r"v?(\d+(\.\d+)*\S*)", tag or "")
        ver = match.group(1) if match else version
        make_project(root, name, ver, deps, modules, scripts=scripts)
        git_commit_all(root, f"{name} {ver}")
        if tag:
            shas[tag] = git_tag(root, tag, annotated=annotated)
    return GitRepo(root, shas)


# --------------------------------------------------------------------------- uv and venvs


def uv_bin() -> Path:
    """The uv executable: ``$HPM_TEST_UV``, beside this interpreter, the ``uv`` module, PATH."""
    candidates = [os.environ.get("HPM_TEST_UV"), str(Path(sys.executable).parent / "uv")]
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        candidates.append(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    candidates.append(shutil.which("uv"))
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise FileNotFoundError("uv not found: install it in the test venv or set HPM_TEST_UV")


_UNSET_PREFIXES = ("UV_", "PIP_", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")


def hermetic_env(cache_dir: StrPath, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) made safe for uv in tests.

    Drops every ``UV_*``/``PIP_*`` setting and active venv, then: a private
    ``UV_CACHE_DIR``, ``UV_NO_CONFIG`` (no uv.toml/pyproject config of the user),
    ``UV_OFFLINE`` (no network), ``UV_PYTHON_DOWNLOADS=never``, and git without user or
    system config; uv's directory goes first on ``PATH``. There is no ``UV_NO_INDEX``
    variable: pass ``--no-index`` explicitly.
    """
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(_UNSET_PREFIXES)
    }
    try:  # so code under test that looks for `uv` on PATH finds the same one
        uv_dir = os.fspath(uv_bin().parent)
        env["PATH"] = os.pathsep.join(
            [uv_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != uv_dir)]
        )
    except FileNotFoundError:
        pass
    env.update(
        UV_CACHE_DIR=os.fspath(cache_dir),
        UV_NO_CONFIG="1",
        UV_OFFLINE="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def run_uv(
    *args: StrPath, env: Mapping[str, str] | None = None, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run uv with ``args`` (text mode, output captured); raise with its stderr on failure."""
    proc = subprocess.run(
        [os.fspath(uv_bin()), *map(os.fspath, args)],
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        **kw,
    )
    if check and proc.returncode:
        raise AssertionError(
            f"uv {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def venv_python(venv: StrPath) -> Path:
    """The interpreter of a venv."""
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    return Path(venv, *sub)


def make_venv(
    path: StrPath, python: StrPath = sys.executable, env: Mapping[str, str] | None = None
) -> Path:
    """Create a venv with ``uv venv`` (no pip, offline) and return its interpreter."""
    run_uv("venv", "-q", "--python", python, path, env=env)
    return venv_python(path)

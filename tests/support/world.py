"""Helpers shared by tests/test_install.py and tests/test_run.py (no tests in this module).

``World`` is one hermetic playground: the session wheelhouse, a git plugin, a registry
written by the test, lock files made by ``hpm lock``, and ``hpm`` itself run as a
subprocess (``python -m hpm_boot``) with uv offline and a private cache. The probe
application prints one ``PROBE{json}`` line: its PID, interpreter, argv, the installed
distributions, selected environment variables and signal dispositions.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.factory import GitRepo, make_git_repo, make_project

ROOT = Path(__file__).resolve().parents[2]
HPM = [sys.executable, "-m", "hpm_boot"]

PROBE = r"""
import json, os, signal, sys
import importlib.metadata as md

dists = {}
for d in md.distributions():
    name = d.metadata["Name"].lower().replace("_", "-")
    direct = d.read_text("direct_url.json")
    dists[name] = {"version": d.version, "direct_url": json.loads(direct) if direct else None}
mods = {}
for m in filter(None, os.environ.get("PROBE_IMPORT", "").split(",")):
    mod = __import__(m)
    mods[m] = getattr(mod, "VALUE", getattr(mod, "__version__", None))
keys = ("VIRTUAL_ENV", "HPM_LOCK_B64", "HPM_LOCK_KEY", "HPM_LOCK_KEY_FILE", "HPM_LOCK_FILE", "PATH", "HOME")
print("PROBE" + json.dumps({
    "pid": os.getpid(), "exe": sys.executable, "prefix": sys.prefix,
    "argv": [os.fsencode(a).hex() for a in sys.argv[1:]],
    "dists": dists, "mods": mods, "env": {k: os.environ.get(k) for k in keys},
    "sigpipe_default": signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL,
    "sigxfsz_default": signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL,
}), flush=True)
"""

EDIT_MANIFEST = """\
name: hpmtest-edit
version: 0.3.0
sources:
  prod: {type: pypi, package: hpmtest-dep, version: "==1.0.0"}
  dev: {type: local, path: ../packages/edit, editable: true}
"""


def probe_of(out: str) -> dict[str, Any]:
    """The probe's record in a process's stdout (fails the test when there is none)."""
    for line in out.splitlines():
        if line.startswith("PROBE"):
            data = json.loads(line[5:])
            data["argv"] = [bytes.fromhex(a).decode("utf-8", "surrogateescape") for a in data["argv"]]
            return data
    raise AssertionError(f"the probe did not run; stdout was:\n{out}")


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@dataclass
class World:
    tmp: Path
    wheelhouse: Path
    uv: Path
    env: dict[str, str]
    git: GitRepo
    registry: Path = field(init=False)
    probe: Path = field(init=False)

    def __post_init__(self) -> None:
        self.registry = self.tmp / "registry"
        self.registry.mkdir()
        self.probe = self.tmp / "probe.py"
        self.probe.write_text(PROBE)

    # ------------------------------------------------------------ running hpm

    def hpm(
        self,
        *args: str | os.PathLike[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
        python: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m hpm_boot ARGS`` (``env`` is added to the world's environment)."""
        argv = [python, "-m", "hpm_boot"] if python else list(HPM)
        return subprocess.run(
            [*argv, *map(os.fspath, args)],
            env={**self.env, **(env or {})},
            cwd=cwd or self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="surrogateescape",
        )

    def index(self) -> list[str]:
        return ["--no-index", "--find-links", str(self.wheelhouse)]

    def run_probe(
        self, *pre: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        proc = self.hpm("run", *pre, *self.index(), "--", "python", str(self.probe), *args, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc, probe_of(proc.stdout)

    # ------------------------------------------------------------ registry and locks

    def manifest(self, name: str, text: str) -> Path:
        path = self.registry / f"{name}.yaml"
        path.write_text(text)
        return path

    def editable_package(self, value: int, extra: str = "") -> Path:
        """hpmtest-edit: a checkout at ``packages/edit`` whose ``hpmtest_edit.VALUE`` is ``value``,
        and its manifest: prod from PyPI (hpmtest-dep), dev the checkout, editable; ``extra``
        (YAML text) is appended to the manifest. Returns the checkout."""
        modules = {"hpmtest_edit/__init__.py": f"VALUE = {value}\n"}
        checkout = make_project(self.tmp / "packages" / "edit", "hpmtest-edit", "0.3.0", modules=modules)
        self.manifest("hpmtest-edit", EDIT_MANIFEST + extra)
        return checkout

    def standard_registry(self) -> None:
        """hpmtest-app (pypi, entrypoints), hpmtest-gitplugin (git v0.1.0), hpmtest-extra[fast]."""
        self.manifest(
            "hpmtest-app",
            f"""\
name: hpmtest-app
version: 1.0.0
sources:
  prod: {{type: pypi, version: "==1.0.0"}}
entrypoints:
  serve: "python -m hpmtest_app --port 'a b' --home $HOME"
  probe: "python {self.probe} 'from entrypoint' two"
""",
        )
        self.manifest(
            "hpmtest-gitplugin",
            f"""\
name: hpmtest-gitplugin
version: 0.1.0
sources:
  prod: {{type: git, url: "{self.git.url}", ref: v0.1.0}}
entrypoints:
  probe: "python {self.probe} gitplugin"
""",
        )
        self.manifest(
            "hpmtest-extra",
            """\
name: hpmtest-extra
version: 1.0.0
sources:
  prod: {type: pypi, version: "==1.0.0"}
install_args:
  extras: [fast]
""",
        )

    def lock(self, *with_: str, out: str = "lock.json", extra: tuple[str, ...] = ()) -> Path:
        """``hpm lock --with ...`` of the registry, as a JSON file."""
        path = self.tmp / out
        args = [a for w in with_ for a in ("--with", w)]
        proc = self.hpm("lock", "-r", self.registry, *args, *self.index(), "-o", path, *extra)
        assert proc.returncode == 0, proc.stderr
        return path

    # ------------------------------------------------------------ installer stand-ins

    def counting_uv(self) -> tuple[Path, Path]:
        """A uv wrapper that logs each invocation (one line of args) and runs the real uv."""
        log = self.tmp / "uv-calls.log"
        wrapper = write_exe(self.tmp / "uv-counting", f'#!/bin/sh\necho "$@" >> {log}\nexec {self.uv} "$@"\n')
        return wrapper, log

    def forbidden_uv(self) -> tuple[Path, Path]:
        """A directory with a ``uv`` that must never run (writes a marker, exits 99)."""
        bindir = self.tmp / "forbidden-bin"
        bindir.mkdir(exist_ok=True)
        marker = self.tmp / "installer-was-called"
        write_exe(bindir / "uv", f'#!/bin/sh\necho "$@" >> {marker}\nexit 99\n')
        return bindir, marker

    def forbidden_env(self) -> tuple[dict[str, str], Path]:
        bindir, marker = self.forbidden_uv()
        return {"HPM_UV": str(bindir / "uv"), "PATH": f"{bindir}{os.pathsep}{self.env['PATH']}"}, marker


def uv_calls(log: Path, sub: str = "pip install") -> list[str]:
    """The logged uv invocations that start with ``sub``."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith(sub)]


def b64_of(lock: Path) -> str:
    """A lock file as an HPM_LOCK_B64 payload, through hpm's own encoder."""
    sys.path.insert(0, str(ROOT))
    from hpm_boot import payload

    return payload.encode(json.loads(lock.read_text()))


@pytest.fixture
def world(tmp_path: Path, wheelhouse: Path, uv_bin: Path) -> World:
    git = make_git_repo(
        tmp_path / "gitplugin", "hpmtest-gitplugin", deps=["hpmtest-core>=1.0"], tags=["v0.1.0", "v0.2.0"]
    )
    env = dict(os.environ)
    env.pop("HPM_UV", None)
    env["HPM_TERMINATION_LOG"] = ""
    return World(tmp_path, wheelhouse, uv_bin, env, git)


__all__ = [
    "HPM",
    "PROBE",
    "ROOT",
    "World",
    "b64_of",
    "probe_of",
    "uv_calls",
    "world",
    "write_exe",
]

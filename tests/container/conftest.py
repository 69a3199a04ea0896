"""Fixtures for tests in a real container engine (podman here; see docker/NOTES.md).

Once per session: ``docker/setup-engine.sh`` (when it cannot set an engine up, every
test here is SKIPPED with the reason it printed), ``build_zipapp.py`` into a temp dir,
and the two images of ``docker/`` (root and non-root) built from that pyz and the host's
uv binary. Containers run with ``--network=none``; packages come from a wheelhouse
mounted read-only at /wheels, which hpm's uv finds through ``UV_OFFLINE=1`` and
``UV_FIND_LINKS=/wheels`` (uv has no ``UV_NO_INDEX``; offline means the index is never
asked). Every image, container and volume a session makes carries a per-session name
and is removed at the end.

Set HPM_TEST_ENGINE=docker to run the same tests against Docker (setup-engine.sh is
then skipped; the engine must already work and have the base image: HPM_TEST_BASE).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.factory import DEFAULT_PACKAGES, Pkg, make_project, make_wheelhouse
from tests.support.factory import uv_bin as find_uv

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("HPM_TEST_BASE", "localhost/hpm-base:bookworm")
ENGINE_NAME = os.environ.get("HPM_TEST_ENGINE", "podman")

#: The app of the tests: prints one JSON line about the process it runs in.
PROBE_MODULE = '''\
import json, os, sys

def report(extra=None):
    procs = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    procs[p] = f.read().replace(b"\\0", b" ").decode().strip()
            except OSError:
                pass
    data = {"pid": os.getpid(), "uid": os.getuid(), "argv": sys.argv[1:], "exe": sys.executable,
            "prefix": sys.prefix, "path": sys.path,
            "file": __file__, "procs": procs, "env_lock": "HPM_LOCK_B64" in os.environ,
            "virtual_env": os.environ.get("VIRTUAL_ENV")}
    data.update(extra or {})
    print("PROBE " + json.dumps(data), flush=True)

def main():
    report()
    if "--exit" in sys.argv:
        return int(sys.argv[sys.argv.index("--exit") + 1])
    return 0
'''
PROBE = Pkg("hpmtest-probe", "1.0.0", deps=("hpmtest-core>=1.0",), modules={
    "hpmtest_probe/__init__.py": PROBE_MODULE,
    "hpmtest_probe/__main__.py": "import sys\nfrom hpmtest_probe import main\nsys.exit(main())\n",
})
DEVPLUG_MODULE = 'VALUE = "{value}"\n'
DEVPLUG_MAIN = ("import hpmtest_probe, hpmtest_devplug\n"
                "hpmtest_probe.report({'devplug': hpmtest_devplug.VALUE,\n"
                "                      'devfile': hpmtest_devplug.__file__})\n")
#: Packages of the cold-start benchmark (bench/container_start.py) and of the smoke test.
BENCH_PACKAGES = tuple(Pkg(f"hpmtest-bench{i:02d}", "1.0.0") for i in range(20))
BROKEN = Pkg("hpmtest-broken", "1.0.0", modules={"hpmtest_broken/__init__.py": "raise ImportError('boom')\n"})

MANIFESTS = {
    "hpmtest-probe": (
        'version: 1.0.0\nsources:\n  prod: {type: pypi, package: hpmtest-probe, version: "==1.0.0"}\n'
        "entrypoints:\n"
        '  serve: "python3 -m hpmtest_probe serve --port 8001"\n'
        '  smoke: "python3 -m hpmtest_probe smoke"\n'
        '  bare: "python -m hpmtest_probe bare"\n'
    ),
    "hpmtest-devplug": (
        "version: 0.1.0\nrequires: {hpmtest-probe: \">=1\"}\n"
        'sources:\n  prod: {type: pypi, package: hpmtest-devplug, version: "==0.1.0"}\n'
        "  dev: {type: local, path: /src/devplug, editable: true}\n"
    ),
    "hpmtest-app": 'version: 1.0.0\nsources:\n  prod: {type: pypi, package: hpmtest-app, '
                   'version: "==1.0.0"}\n',
    "hpmtest-broken": 'version: 1.0.0\nsources:\n  prod: {type: pypi, package: hpmtest-broken, '
                      'version: "==1.0.0"}\n',
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.container)


# ---------------------------------------------------------------- engine


@dataclass
class Engine:
    """A container engine CLI with the session's names, and cleanup of what it made."""

    exe: str
    session: str
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True,
                 timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.exe, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.exe} {' '.join(args)} -> exit {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def name(self, what: str) -> str:
        """A container or volume name unique to this session (removed at the end)."""
        name = f"hpmt-{self.session}-{what}"
        if what.startswith("vol"):
            self.volumes.append(name)
        else:
            self.containers.append(name)
        return name

    def exit_code(self, container: str) -> int:
        return int(self("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip())

    def cleanup(self) -> None:
        for c in self.containers:
            self("rm", "-f", "-t", "0", c, check=False)
        for v in self.volumes:
            self("volume", "rm", "-f", v, check=False)
        for i in self.images:
            self("rmi", "-f", i, check=False)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    if ENGINE_NAME == "podman":
        try:
            proc = subprocess.run(["bash", str(ROOT / "docker" / "setup-engine.sh")], capture_output=True,
                                  text=True, timeout=1200)
        except subprocess.TimeoutExpired:
            pytest.skip("engine: unavailable: docker/setup-engine.sh timed out after 20 minutes")
        if proc.returncode != 0:
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"docker/setup-engine.sh exited {proc.returncode}"
            pytest.skip(f"{reason} (docker/setup-engine.sh exit {proc.returncode})")
    exe = shutil.which(ENGINE_NAME)
    if exe is None:
        pytest.skip(f"engine: unavailable: {ENGINE_NAME} is not on PATH")
    if ENGINE_NAME != "podman":  # not set up by the script: see that it answers at all
        info = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=120)
        if info.returncode != 0:
            last = (info.stderr.strip().splitlines() or [f"exit {info.returncode}"])[-1]
            pytest.skip(f"engine: unavailable: `{ENGINE_NAME} info` failed: {last}")
    eng = Engine(exe, uuid.uuid4().hex[:8])
    yield eng
    eng.cleanup()


# ---------------------------------------------------------------- pyz and images


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "hpm.pyz"
    proc = subprocess.run([sys.executable, str(ROOT / "build_zipapp.py"), "-o", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(f"build_zipapp.py failed:\n{proc.stdout}\n{proc.stderr}")
    return out


@dataclass(frozen=True)
class Images:
    root: str
    nonroot: str
    python_version: str  # of the base image, "3.11"
    build_seconds: float
    python_platform: str = ""  # of the base image, in uv's spelling ("x86_64-manylinux_2_36")


def build_context(directory: Path, pyz: Path) -> Path:
    """A docker build context: hpm.pyz and the host's uv binary."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pyz, directory / "hpm.pyz")
    shutil.copy2(find_uv(), directory / "uv")
    return directory


@pytest.fixture(scope="session")
def images(engine: Engine, pyz: Path, tmp_path_factory: pytest.TempPathFactory) -> Images:
    ctx = build_context(tmp_path_factory.mktemp("ctx"), pyz)
    started = time.perf_counter()
    tags = {}
    for kind, dockerfile in (("root", "Dockerfile"), ("nonroot", "Dockerfile.nonroot")):
        tag = f"localhost/hpm-test-{kind}:{engine.session}"
        engine("build", "-q", "-t", tag, "--build-arg", f"BASE={BASE_IMAGE}",
               "-f", str(ROOT / "docker" / dockerfile), str(ctx), timeout=600)
        engine.images.append(tag)
        tags[kind] = tag
    seconds = time.perf_counter() - started
    from hpm_boot.commands.docker import image_target

    version, platform = image_target(engine.exe, tags["root"])  # as `hpm docker run` asks it
    return Images(tags["root"], tags["nonroot"], version, seconds, platform or "")


# ---------------------------------------------------------------- packages, registry, locks


@pytest.fixture(scope="session")
def container_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    devplug = Pkg("hpmtest-devplug", "0.1.0", deps=("hpmtest-probe",), modules={
        "hpmtest_devplug/__init__.py": DEVPLUG_MODULE.format(value="wheel"),
        "hpmtest_devplug/__main__.py": DEVPLUG_MAIN,
    })
    wh = make_wheelhouse(tmp_path_factory.mktemp("cwh"),
                         [*DEFAULT_PACKAGES, PROBE, devplug, BROKEN, *BENCH_PACKAGES])
    wh.chmod(0o755)
    for f in wh.iterdir():
        f.chmod(0o644)  # readable by the non-root user of the image
    return wh


@pytest.fixture(scope="session")
def container_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reg = tmp_path_factory.mktemp("creg")
    for name, body in MANIFESTS.items():
        (reg / f"{name}.yaml").write_text(f"name: {name}\n{body}")
    return reg


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins for uv, mounted at /opt/hpmtest: one that logs its calls to /calls, one
    that is slow to start (a long install that a stop interrupts)."""
    d = tmp_path_factory.mktemp("tools")
    (d / "uv-logging").write_text('#!/bin/sh\necho "uv $*" >> /calls/uv-calls.log\n'
                                  'exec /usr/local/bin/uv "$@"\n')
    (d / "uv-slow").write_text('#!/bin/sh\necho "$$" > /calls/uv-slow.started\nsleep 120\n'
                               'exec /usr/local/bin/uv "$@"\n')
    for f in d.iterdir():
        f.chmod(0o755)
    d.chmod(0o755)
    return d


def hpm_host(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """hpm on the host (the source tree: the same code as the pyz)."""
    proc = subprocess.run([sys.executable, "-m", "hpm_boot", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"hpm {' '.join(args)} -> exit {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def make_lock(container_registry: Path, container_wheelhouse: Path, images: Images):
    """``make_lock("hpmtest-probe", ...)`` -> the HPM_LOCK_B64 text for the image's Python
    (``fmt="json"``: the lock file's text)."""
    cache: dict[tuple[str, ...], str] = {}

    def make(*with_: str, mode: str = "prod", fmt: str = "b64") -> str:
        key = (*with_, mode, fmt)
        if key not in cache:
            cache[key] = hpm_host(
                "lock", "--format", fmt, "-o", "-", "--registry", str(container_registry),
                *[a for w in with_ for a in ("--with", w)], "--mode", mode,
                "--python-version", images.python_version, "--no-index",
                *(["--python-platform", images.python_platform] if images.python_platform else []),
                "--find-links", str(container_wheelhouse)).stdout.strip()
        return cache[key]

    return make


# ---------------------------------------------------------------- running containers


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def probe(self) -> dict:
        lines = [line for line in self.proc.stdout.splitlines() if line.startswith("PROBE ")]
        assert lines, f"no PROBE line in the output:\n{self.proc.stdout}\n{self.proc.stderr}"
        return json.loads(lines[-1][6:])

    @property
    def log(self) -> str:
        return self.proc.stderr


@pytest.fixture(scope="session")
def run_container(engine: Engine, container_wheelhouse: Path, tools: Path):
    """``run_container(image, *cmd, env={...}, args=[...])``: one container, hermetic.

    ``env`` values travel through the engine's environment (``-e NAME``), as
    ``hpm docker run`` does it; ``args`` go before the image (``--name``, ``-v``, ...)."""

    def run(image: str, *cmd: str, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
            rm: bool = True, timeout: float = 300, check: int | None = 0) -> Run:
        env = {"UV_OFFLINE": "1", "UV_FIND_LINKS": "/wheels", **(env or {})}
        argv = ["run", *(["--rm"] if rm else []), "--network=none",
                "-v", f"{container_wheelhouse}:/wheels:ro", "-v", f"{tools}:/opt/hpmtest:ro",
                *[a for k in env for a in ("-e", k)], *args, image, *cmd]
        started = time.perf_counter()
        proc = engine(*argv, env=env, check=False, timeout=timeout)
        result = Run(proc, time.perf_counter() - started)
        if check is not None and proc.returncode != check:
            raise AssertionError(f"container exited {proc.returncode}, expected {check}\n"
                                 f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return result

    return run


@pytest.fixture
def devplug_checkout(tmp_path: Path) -> Path:
    """A dev checkout of hpmtest-devplug, to mount at /src/devplug."""
    src = make_project(tmp_path / "devplug", "hpmtest-devplug", "0.1.0", deps=["hpmtest-probe"], modules={
        "hpmtest_devplug/__init__.py": DEVPLUG_MODULE.format(value="one"),
        "hpmtest_devplug/__main__.py": DEVPLUG_MAIN,
    })
    for p in [src, *src.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    return src

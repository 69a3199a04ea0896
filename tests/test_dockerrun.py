"""``hpm docker run`` against a stand-in engine (a script named podman on PATH).

The stand-in answers the image questions (Python version, ENTRYPOINT) and records the
argv and the HPM_LOCK_B64 it was given. The real engine is exercised in
tests/container/test_boot.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpm_boot import payload
from hpm_boot.commands import docker as dockerrun
from hpm_boot.compose import lock as lockmod
from hpm_boot.errors import UsageError

FAKE_ENGINE = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["image", "inspect"]:
    print(json.dumps(["python3", "/opt/hpm/hpm.pyz", "run", "--"]))
    sys.exit(0)
if "--entrypoint" in args and "-c" in args and "--rm" in args:
    print(os.environ.get("FAKE_PROBE", "3.11 x86_64 glibc 2.36"))
    sys.exit(0)
with open(os.environ["FAKE_RECORD"], "w") as f:
    json.dump({{"argv0": sys.argv[0], "args": args, "b64": os.environ.get("HPM_LOCK_B64"),
               "key": os.environ.get("HPM_LOCK_KEY")}}, f)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def fake_engine(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    engine = bin_dir / "podman"
    engine.write_text(FAKE_ENGINE.format(python=sys.executable))
    engine.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["FAKE_RECORD"] = str(tmp_path / "record.json")
    return env


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "registry"
    reg.mkdir()
    (reg / "hpmtest-app.yaml").write_text(
        "name: hpmtest-app\nversion: 1.0.0\n"
        'sources:\n  prod: {type: pypi, package: hpmtest-app, version: "==1.0.0"}\n'
        'entrypoints: {serve: "python -m hpmtest_app serve"}\n')
    return reg


def hpm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpm_boot", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[1])


def record(env: dict[str, str]) -> dict:
    return json.loads(Path(env["FAKE_RECORD"]).read_text())


def test_locks_for_the_image_and_passes_the_payload_in_the_environment(fake_engine, registry, wheelhouse):
    proc = hpm(fake_engine, "docker", "run", "--engine", "podman", "--image", "img:1",
               "--registry", str(registry), "--with", "hpmtest-app", "--no-index",
               "--find-links", str(wheelhouse), "--rm", "-p", "8080:80", "-e", "A=1", "--network=none",
               "--", "python", "-m", "hpmtest_app", "x y")
    assert proc.returncode == 0, proc.stderr
    got = record(fake_engine)
    assert got["args"] == ["run", "--rm", "-p", "8080:80", "-e", "A=1", "--network=none",
                           "-e", "HPM_LOCK_B64", "img:1", "python", "-m", "hpmtest_app", "x y"]
    assert not any(a.startswith("hpm1.") or "HPM_LOCK_B64=" in a for a in got["args"])
    lock = payload.decode(got["b64"])
    assert lock["targets"] == [{"python_version": "3.11", "python_platform": "x86_64-manylinux_2_36"}]
    assert [p["name"] for p in lock["pins"]] == ["hpmtest-app", "hpmtest-core"]
    assert "Python 3.11 x86_64-manylinux_2_36" in proc.stderr


def test_exit_code_passes_through_and_options_after_run(fake_engine, registry, wheelhouse):
    env = {**fake_engine, "FAKE_EXIT": "7"}
    proc = hpm(env, "docker", "run", "--with=hpmtest-app", "--image", "img:1", "--engine=podman",
               "-v", "/a:/b", "--registry", str(registry), "--python-version", "3.12",
               "--no-index", "--find-links", str(wheelhouse))
    assert proc.returncode == 7, proc.stderr
    got = record(env)
    assert got["args"] == ["run", "-v", "/a:/b", "-e", "HPM_LOCK_B64", "img:1"]
    lock = payload.decode(got["b64"])
    # given: the image was not asked; the platform is this machine's, named
    assert lock["targets"] == [{"python_version": "3.12",
                                "python_platform": lockmod.default_target(None, None).python_platform}]


def test_manifest_entrypoint_rewrites_the_image_entrypoint(fake_engine, registry, wheelhouse):
    proc = hpm(fake_engine, "docker", "--engine", "podman", "run", "--image", "img:1",
               "--registry", str(registry), "--with", "hpmtest-app", "--entrypoint", "serve",
               "--no-index", "--find-links", str(wheelhouse), "--rm", "--", "--port", "1")
    assert proc.returncode == 0, proc.stderr
    assert record(fake_engine)["args"] == [
        "run", "--rm", "-e", "HPM_LOCK_B64", "--entrypoint", "python3", "img:1",
        "/opt/hpm/hpm.pyz", "run", "--entrypoint", "serve", "--", "--port", "1"]


def test_dry_run_and_signing(fake_engine, registry, wheelhouse, tmp_path):
    env = {**fake_engine, "HPM_LOCK_KEY": "s3cret"}
    lock_file = tmp_path / "lock.json"
    assert hpm(env, "lock", "--registry", str(registry), "--with", "hpmtest-app", "--no-index",
               "--find-links", str(wheelhouse), "-o", str(lock_file)).returncode == 0
    env.pop("HPM_LOCK_KEY")
    proc = hpm(env, "docker", "run", "--engine", "podman", "--image", "img:1", "--lock", str(lock_file),
               "--dry-run", "--rm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HPM_LOCK_B64=<") and "podman run --rm -e HPM_LOCK_B64 img:1" in proc.stdout
    assert "hpm1." not in proc.stdout
    assert not Path(env["FAKE_RECORD"]).exists()
    env["HPM_LOCK_KEY"] = "s3cret"
    assert hpm(env, "docker", "run", "--engine", "podman", "--image", "img:1", "--lock", str(lock_file),
               "--", "true").returncode == 0
    got = record(env)
    assert got["key"] is None  # the key stays on the host; the payload carries the signature
    _, signed = payload.decode_with_state(got["b64"], b"s3cret")
    assert signed


@pytest.mark.parametrize(("args", "code", "message"), [
    (["docker", "run", "--engine", "podman"], 2, "no image"),
    (["docker", "pull"], 2, "expected `hpm docker run"),
    (["docker", "run", "--mode", "bogus", "--image", "x"], 2, "hpm docker run: argument --mode: invalid"),
    (["docker", "run", "--image", "x", "--engine", "docker"], 69, "no container engine"),
])
def test_usage_errors(fake_engine, args, code, message):
    env = {**fake_engine, "PATH": str(Path(fake_engine["PATH"].split(os.pathsep)[0]))}
    proc = hpm(env, *args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("hpm: error: ") and message in proc.stderr.splitlines()[0], proc.stderr
    assert sum(line.startswith("hpm: error:") for line in proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("where", [["run", "--help"], ["run", "--image", "x", "-h"]])
def test_help_after_run_is_hpms_help(fake_engine, where):
    proc = hpm(fake_engine, "docker", *where)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hpm docker run") and "--image IMAGE" in proc.stdout
    assert not Path(fake_engine["FAKE_RECORD"]).exists()  # the engine was not run


NO_DAEMON = """#!/bin/sh
echo 'docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. \
Is the docker daemon running?' >&2
echo "Run 'docker run --help' for more information" >&2
exit 125
"""


def test_engine_without_daemon_names_the_cause_first(registry, tmp_path):
    """A docker client with no daemon: the cause is hpm's one line, not the "Run 'docker
    run --help'" that follows it. The real client when there is one (pointed at a socket
    that does not exist), else a script printing what it prints."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    if not shutil.which("docker"):
        bin_dir = tmp_path / "nodaemon"
        bin_dir.mkdir()
        (bin_dir / "docker").write_text(NO_DAEMON)
        (bin_dir / "docker").chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    proc = hpm(env, "-r", str(registry), "docker", "run", "--engine", "docker", "--with", "hpmtest-app",
               "--image", "myapp")
    assert proc.returncode == 69, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("hpm: error: asking myapp for its Python: docker: Cannot connect to the Docker "
                            "daemon"), proc.stderr


def test_engine_cause():
    assert dockerrun.engine_cause("Error: short-name resolution\n") == "Error: short-name resolution"
    assert dockerrun.engine_cause("") == ""


def test_split_words():
    hpm_words, engine, cmd = dockerrun.split_words(
        ["run", "-p", "80:80", "--with", "a", "--mode=dev", "--name", "x", "--no-index", "-e", "K",
         "--", "python", "--with", "b"])
    assert hpm_words == ["--with", "a", "--mode=dev", "--no-index"]
    assert engine == ["-p", "80:80", "--name", "x", "-e", "K"]
    assert cmd == ["python", "--with", "b"]
    assert dockerrun.split_words(["--", "run", "--", "x"]) == ([], [], ["x"])
    with pytest.raises(UsageError):
        dockerrun.split_words(["run", "--with"])


def test_uv_platform():
    assert dockerrun.uv_platform("x86_64", "glibc", "2.36") == "x86_64-manylinux_2_36"
    assert dockerrun.uv_platform("aarch64", "glibc", "2.12") == "aarch64-manylinux_2_17"
    assert dockerrun.uv_platform("arm64", "glibc", "2.99") == "aarch64-manylinux_2_40"
    assert dockerrun.uv_platform("x86_64", "", "") == "x86_64-unknown-linux-musl"
    assert dockerrun.uv_platform("s390x", "glibc", "2.36") is None


def inflate(lock_file: Path, pins: int = 2500) -> None:
    """Make ``lock_file`` too large for HPM_LOCK_B64 (above 120 KiB as a payload) without
    changing what it installs: pins with random hashes whose markers never apply."""
    data = json.loads(lock_file.read_text())
    data["pins"] += [{"name": f"hpmtest-filler{i:04d}", "version": "1.0", "markers": 'python_version < "3"',
                      "hashes": [f"sha256:{os.urandom(32).hex()}"]} for i in range(pins)]
    lock_file.write_text(json.dumps(data))


@pytest.fixture
def big_lock(fake_engine, registry, wheelhouse, tmp_path) -> Path:
    lock_file = tmp_path / "big.json"
    assert hpm(fake_engine, "lock", "--registry", str(registry), "--with", "hpmtest-app", "--no-index",
               "--find-links", str(wheelhouse), "-o", str(lock_file)).returncode == 0
    inflate(lock_file)
    assert len(payload.encode(json.loads(lock_file.read_text()))) > payload.MAX_BYTES
    return lock_file


def test_a_large_lock_within_the_env_limit_goes_in_the_environment_with_a_warning(fake_engine, registry,
                                                                                  wheelhouse, tmp_path):
    lock_file = tmp_path / "large.json"
    assert hpm(fake_engine, "lock", "--registry", str(registry), "--with", "hpmtest-app", "--no-index",
               "--find-links", str(wheelhouse), "-o", str(lock_file)).returncode == 0
    inflate(lock_file, pins=1200)
    size = len(payload.encode(json.loads(lock_file.read_text())))
    assert payload.WARN_BYTES < size <= payload.MAX_BYTES
    proc = hpm(fake_engine, "docker", "run", "--engine", "podman", "--image", "img:1",
               "--lock", str(lock_file), "--dry-run", "--rm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"HPM_LOCK_B64=<{size} bytes> podman run --rm -e HPM_LOCK_B64 img:1\n"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("hpm: warning: ")]
    assert warnings == [f"hpm: warning: {payload.size_check('x' * size)}"], proc.stderr


def test_a_lock_above_the_env_limit_is_mounted_as_a_file_for_a_local_engine(fake_engine, big_lock, tmp_path):
    env = {**fake_engine, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = hpm(env, "docker", "run", "--engine", "podman", "--image", "img:1", "--lock", str(big_lock),
               "--dry-run", "--rm")
    assert proc.returncode == 0, proc.stderr
    assert "-e HPM_LOCK_FILE=/etc/hpm/lock.hpm1 img:1" in proc.stdout and "HPM_LOCK_B64" not in proc.stdout
    assert not (tmp_path / "xdg").exists()  # a dry run writes nothing
    proc = hpm(env, "docker", "run", "--engine", "podman", "--image", "img:1", "--lock", str(big_lock),
               "--rm", "--", "python3", "-m", "app")
    assert proc.returncode == 0, proc.stderr
    got = record(env)
    assert got["b64"] is None  # not in the environment at all
    args = got["args"]
    mount = args[args.index("-v") + 1]
    host, inside, mode = mount.split(":")
    assert (inside, mode) == ("/etc/hpm/lock.hpm1", "ro")
    assert args[args.index("-e") + 1] == "HPM_LOCK_FILE=/etc/hpm/lock.hpm1"
    assert args[-4:] == ["img:1", "python3", "-m", "app"]
    assert Path(host).is_relative_to(tmp_path / "xdg" / "hpm" / "docker-locks")
    lock, _ = payload.load_file(host, None, host)
    assert lock == json.loads(big_lock.read_text())  # the same lock, digest checked
    assert "mounting" in proc.stderr and "HPM_LOCK_FILE" in proc.stderr


@pytest.mark.parametrize(("engine", "variable", "value"), [
    ("podman", "CONTAINER_HOST", "ssh://core@build-host:22/run/podman/podman.sock"),
    ("podman", "CONTAINER_CONNECTION", "build-host"),
    ("docker", "DOCKER_HOST", "tcp://build-host:2376"),
])
def test_a_lock_above_the_env_limit_is_refused_for_a_remote_engine(fake_engine, big_lock, tmp_path, engine,
                                                                   variable, value):
    bin_dir = Path(fake_engine["PATH"].split(os.pathsep)[0])
    if engine == "docker":
        (bin_dir / "docker").write_text((bin_dir / "podman").read_text())
        (bin_dir / "docker").chmod(0o755)
    env = {**fake_engine, variable: value, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = hpm(env, "docker", "run", "--engine", engine, "--image", "img:1", "--lock", str(big_lock),
               "--", "true")
    assert proc.returncode == 65, proc.stderr
    first = next(line for line in proc.stderr.splitlines() if line.startswith("hpm: error:"))
    assert first.startswith("hpm: error: lock payload is "), first
    assert f"the engine is remote ({variable}=" in first, first
    assert "HPM_LOCK_FILE" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(env["FAKE_RECORD"]).exists() and not (tmp_path / "xdg").exists()

"""``hpm smoke`` inside a built image and ``hpm docker run`` against the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.container.conftest import ENGINE_NAME, ROOT

pytestmark = pytest.mark.container


def test_smoke_in_the_image_writes_junit(images, make_lock, run_container, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = run_container(images.root, "/opt/hpm/hpm.pyz", "smoke", "--junit", "/out/smoke.xml",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe", "hpmtest-app")},
                        args=["--entrypoint", "python3", "-v", f"{out}:/out"])
    assert "smoke: 3 passed, 0 failed" in run.proc.stdout, run.proc.stdout + run.log
    suite = ET.parse(out / "smoke.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "0"
    names = sorted(c.get("classname") + " " + c.get("name").split()[0] for c in suite.iter("testcase"))
    assert names == ["hpm.smoke.hpmtest-app import", "hpm.smoke.hpmtest-probe import",
                     "hpm.smoke.hpmtest-probe smoke"]


def test_smoke_in_the_image_fails_on_a_broken_package(images, make_lock, run_container, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = run_container(images.root, "/opt/hpm/hpm.pyz", "smoke", "--junit", "/out/smoke.xml",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe", "hpmtest-broken")},
                        args=["--entrypoint", "python3", "-v", f"{out}:/out"], check=1)
    assert "ImportError: boom" in run.proc.stdout
    suite = ET.parse(out / "smoke.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("classname") for c in failed] == ["hpm.smoke.hpmtest-broken"]


def hpm_docker(images, container_registry, container_wheelhouse,
               *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_OFFLINE": "1", "UV_FIND_LINKS": "/wheels", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hpm_boot", "docker", "run", "--engine", ENGINE_NAME, "--image", images.root,
         "--registry", str(container_registry), "--no-index", "--find-links", str(container_wheelhouse),
         "--rm", "--network=none", "-v", f"{container_wheelhouse}:/wheels:ro",
         "-e", "UV_OFFLINE", "-e", "UV_FIND_LINKS", *args],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def probe_of(proc: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][6:])


def test_hpm_docker_run_registry_to_container(images, container_registry, container_wheelhouse):
    proc = hpm_docker(images, container_registry, container_wheelhouse, "--with", "hpmtest-probe",
                      "--", "python3", "-m", "hpmtest_probe", "from host", "--exit", "5")
    assert proc.returncode == 5, proc.stderr  # the container's code, through the engine
    probe = probe_of(proc)
    assert probe["argv"] == ["from host", "--exit", "5"] and probe["pid"] == 1
    assert f"{images.root}: Python {images.python_version} x86_64-manylinux_2_" in proc.stderr
    assert "installing with uv" in proc.stderr  # hpm inside the container installed the lock


def test_hpm_docker_run_manifest_entrypoint(images, container_registry, container_wheelhouse):
    proc = hpm_docker(images, container_registry, container_wheelhouse, "--with", "hpmtest-probe",
                      "--python-version", images.python_version, "--entrypoint", "serve")
    assert proc.returncode == 0, proc.stderr
    assert probe_of(proc)["argv"] == ["serve", "--port", "8001"]


def test_hpm_docker_run_mounts_a_lock_too_large_for_the_environment(images, container_registry,
                                                                    container_wheelhouse, tmp_path):
    from hpm_boot import payload
    from tests.container.conftest import hpm_host
    from tests.test_dockerrun import inflate

    big = tmp_path / "big.json"
    hpm_host("lock", "--registry", str(container_registry), "--with", "hpmtest-probe", "--python-version",
             images.python_version, "--no-index", "--find-links", str(container_wheelhouse), "-o", str(big))
    inflate(big)
    assert len(payload.encode(json.loads(big.read_text()))) > payload.MAX_BYTES
    proc = hpm_docker(images, container_registry, container_wheelhouse, "--lock", str(big), "--",
                      "python3", "-m", "hpmtest_probe", "mounted",
                      env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0, proc.stderr
    probe = probe_of(proc)
    assert probe["argv"] == ["mounted"] and probe["pid"] == 1 and probe["env_lock"] is False
    assert "lock from HPM_LOCK_FILE=/etc/hpm/lock.hpm1" in proc.stderr, proc.stderr
    assert "installing with uv: 2 requirement(s)" in proc.stderr  # the fillers' markers never apply
    assert list((tmp_path / "xdg" / "hpm" / "docker-locks").iterdir())  # the file that was mounted

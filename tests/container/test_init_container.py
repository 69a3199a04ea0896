"""``hpm lock --format k8s --init-container`` run in real containers.

The generated Deployment is played the way a kubelet plays a pod, one container after
the other: each emptyDir becomes a volume of this "pod", ``env[].valueFrom.secretKeyRef``
reads the generated Secret, ``command:`` replaces the image's ENTRYPOINT, and a host file
is mounted at ``terminationMessagePath`` (``/dev/termination-log``), which is what the
kubelet reads as the termination message. The images are those of docker/, non-root.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container.conftest import Engine, Run, hpm_host

pytestmark = pytest.mark.container


class Pod:
    """One pod of a Deployment, played container by container (init containers first)."""

    def __init__(self, engine: Engine, docs: list[dict[str, Any]], tmp: Path, run_container: Any,
                 extra_env: dict[str, str], extra_args: list[str]) -> None:
        kinds = {d["kind"]: d for d in docs}
        self.secret = kinds["Secret"]
        self.spec = kinds["Deployment"]["spec"]["template"]["spec"]
        self.engine, self.tmp, self.run_container = engine, tmp, run_container
        self.extra_env, self.extra_args = extra_env, extra_args
        pod = uuid.uuid4().hex[:6]
        self.volumes = {v["name"]: engine.name(f"vol-{pod}-{v['name']}") for v in self.spec["volumes"]}
        assert all("emptyDir" in v for v in self.spec["volumes"])

    def run(self, c: dict[str, Any], check: int | None = 0) -> tuple[Run, str]:
        """Run container ``c``; (the run, its termination message)."""
        env = dict(self.extra_env)
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                assert ref["name"] == self.secret["metadata"]["name"]
                env[e["name"]] = self.secret["stringData"][ref["key"]]
        message = self.tmp / f"termination-{c['name']}"
        message.write_text("")
        message.chmod(0o666)
        path = c.get("terminationMessagePath", "/dev/termination-log")
        args = [*self.extra_args, "-v", f"{message}:{path}"]
        for m in c.get("volumeMounts", []):
            args += ["-v", f"{self.volumes[m['name']]}:{m['mountPath']}"]
        if "command" in c:
            args += ["--entrypoint", json.dumps(c["command"])]
        run = self.run_container(c["image"], *c.get("args", []), env=env, args=args, check=check)
        return run, message.read_text()


def generated(images, container_registry: Path, container_wheelhouse: Path,
              *with_: str) -> list[dict[str, Any]]:
    out = hpm_host("lock", "--format", "k8s", "--init-container", "--entrypoint", "serve", "--name", "probe",
                   "--image", images.nonroot, "--registry", str(container_registry),
                   *[a for w in with_ for a in ("--with", w)], "--python-version", images.python_version,
                   "--no-index", "--find-links", str(container_wheelhouse)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_init_container_installs_then_the_app_starts_without_an_installer(
        engine, images, container_registry, container_wheelhouse, run_container, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    calls.chmod(0o777)
    pod = Pod(engine, generated(images, container_registry, container_wheelhouse, "hpmtest-probe"), tmp_path,
              run_container, {"HPM_UV": "/opt/hpmtest/uv-logging"}, ["-v", f"{calls}:/calls"])
    (init,) = pod.spec["initContainers"]
    (app,) = pod.spec["containers"]
    # phase 1: the initContainer installs into the venv volume, and exits 0
    run, message = pod.run(init)
    assert "created virtual environment /venv" in run.log and "installed" in run.log, run.log
    assert message == ""
    installs = (calls / "uv-calls.log").read_text().splitlines()
    assert [c.split()[:3] for c in installs] == [["uv", "venv", "--quiet"], ["uv", "pip", "install"]], \
        installs
    # phase 2: the app container on the same volume: the warm path, no installer process
    for attempt in ("start", "restart"):
        run, message = pod.run(app)
        probe = run.probe
        assert probe["argv"] == ["serve", "--port", "8001"], attempt  # HPM_ENTRYPOINT, no command:
        assert probe["pid"] == 1 and len(probe["procs"]) == 1, (attempt, probe["procs"])
        assert probe["exe"] == "/venv/bin/python" and probe["file"].startswith("/venv/lib/"), attempt
        assert "installing" not in run.log, (attempt, run.log)
        assert (calls / "uv-calls.log").read_text().splitlines() == installs, attempt  # uv never started
        assert message == ""


def test_a_failing_init_install_shows_its_one_line_cause_as_the_termination_message(
        engine, images, container_registry, container_wheelhouse, run_container, tmp_path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    empty.chmod(0o755)
    pod = Pod(engine, generated(images, container_registry, container_wheelhouse, "hpmtest-probe"), tmp_path,
              run_container, {"UV_FIND_LINKS": "/nowheels"}, ["-v", f"{empty}:/nowheels:ro"])
    (init,) = pod.spec["initContainers"]
    run, message = pod.run(init, check=74)
    print(f"\ntermination message: {message!r}")
    assert message.count("\n") <= 1 and message.startswith("hpm: "), repr(message)
    assert "hpmtest" in message and "Traceback" not in run.log, message
    first = next(line for line in run.log.splitlines() if line.startswith("hpm: error:"))
    assert first.removeprefix("hpm: error: ") == message.strip().removeprefix("hpm: ")

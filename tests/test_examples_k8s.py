"""examples/k8s: valid against the real Kubernetes schemas (offline, kubernetes-validate,
strict: unknown fields are errors), and consistent with each other and with hpm."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hpm_boot import payload
from hpm_boot.compose.k8s import manifests

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "k8s"
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
FILES = sorted(EXAMPLES.glob("*.yaml"))


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind() -> dict[str, dict]:
    return {d["kind"]: d for f in FILES for d in docs(f)}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_valid_against_kubernetes_schemas(path, version):
    found = docs(path)
    assert found, path
    for doc in found:
        assert kubernetes_validate.validate(doc, version, strict=True)


def test_the_set_is_complete():
    assert {"Secret", "Deployment", "PersistentVolumeClaim", "Job"} <= set(by_kind())


def container(workload: dict) -> dict:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict) -> dict:
    return {e["name"]: e for e in c["env"]}


def test_secret_is_what_hpm_lock_format_k8s_makes():
    kinds = by_kind()
    secret = kinds["Secret"]
    text = secret["stringData"]["HPM_LOCK_B64"]
    lock = payload.decode(text)  # a real payload: digest checked
    assert lock["version"] == 2 and lock["targets"][0]["python_version"] == "3.12"
    assert [p["name"] for p in lock["packages"]] == ["app-core", "qdrant-adapter", "reranker-bge"]
    made = [d for d in yaml.safe_load_all(manifests(text, "hpm-demo", "registry.example.com/hpm-demo:1.0"))
            if d]
    assert made[0] == secret
    # the hand-written Deployment carries the same lock digest annotation (rolls pods on change)
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["hpm/lock-digest"] == payload.digest(lock)
    assert made[1]["spec"]["template"]["metadata"]["annotations"]["hpm/lock-digest"] == payload.digest(lock)


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_workloads_read_the_secret_and_share_the_uv_cache(kind):
    kinds = by_kind()
    workload = kinds[kind]
    c = container(workload)
    env = env_of(c)
    ref = env["HPM_LOCK_B64"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": kinds["Secret"]["metadata"]["name"], "key": "HPM_LOCK_B64"}
    assert all("value" not in e or not str(e["value"]).startswith("hpm1.") for e in c["env"])
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    cache = volumes[mounts[env["UV_CACHE_DIR"]["value"]]]
    assert cache["persistentVolumeClaim"]["claimName"] == kinds["PersistentVolumeClaim"]["metadata"]["name"]
    assert "ReadWriteMany" in kinds["PersistentVolumeClaim"]["spec"]["accessModes"]
    # read-only root filesystem: HPM_VENV and /tmp are volumes
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["HPM_VENV"]["value"] in mounts and "/tmp" in mounts


def test_startup_probe_waits_for_the_ready_file_long_enough():
    c = container(by_kind()["Deployment"])
    ready = env_of(c)["HPM_READY_FILE"]["value"]
    probe = c["startupProbe"]
    assert probe["exec"]["command"] == ["cat", ready]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300  # a cold JIT install
    assert ready.startswith("/tmp/")  # writable: /tmp is an emptyDir
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_deployment_names_a_manifest_entrypoint_without_a_command_override():
    """HPM_ENTRYPOINT instead of `command:`; it names an entrypoint of the locked plan, and
    hpm turns it (with `args:` as its arguments) into the command it will exec."""
    from hpm_boot.handover import choose_command, requested_entrypoint

    kinds = by_kind()
    c = container(kinds["Deployment"])
    assert "command" not in c
    env = {k: e["value"] for k, e in env_of(c).items() if "value" in e}
    lock = payload.decode(kinds["Secret"]["stringData"]["HPM_LOCK_B64"])
    entrypoint, origin = requested_entrypoint(None, env)
    assert (entrypoint, origin) == ("app-core:serve", "HPM_ENTRYPOINT")
    argv = choose_command(lock, entrypoint, c.get("args", []), None, origin)
    assert argv == ["python", "-m", "app_core", "serve", "--port", "8000"]


def test_the_init_container_example_has_the_shape_hpm_generates():
    """deployment-init.yaml: what `hpm lock --format k8s --init-container` writes (the same
    initContainer command, the same variables and venv volume in both containers), plus
    production settings; its app container starts warm on the shared venv."""
    (deployment,) = docs(EXAMPLES / "deployment-init.yaml")
    secret = by_kind()["Secret"]
    text = secret["stringData"]["HPM_LOCK_B64"]
    generated = manifests(text, "hpm-demo-init", "registry.example.com/hpm-demo:1.0", init_container=True,
                          entrypoint="app-core:serve")
    made = [d for d in yaml.safe_load_all(generated) if d]
    ours, theirs = deployment["spec"]["template"]["spec"], made[1]["spec"]["template"]["spec"]
    (init,), (made_init,) = ours["initContainers"], theirs["initContainers"]
    assert init["name"] == made_init["name"] == "hpm-install" and init["command"] == made_init["command"]
    assert {e["name"] for e in made_init["env"]} <= {e["name"] for e in init["env"]}
    app, made_app = container(deployment), theirs["containers"][0]
    assert "command" not in app and "startupProbe" not in app
    assert {e["name"] for e in made_app["env"]} <= {e["name"] for e in app["env"]}
    venv = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}["/venv"]
    assert {m["mountPath"]: m["name"] for m in app["volumeMounts"]}["/venv"] == venv
    assert {v["name"]: v for v in ours["volumes"]}[venv]["emptyDir"] == {}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["hpm/lock-digest"] == \
        made[1]["spec"]["template"]["metadata"]["annotations"]["hpm/lock-digest"]

"""``hpm lock --format k8s`` (hpm_boot.compose.k8s): a Secret and a Deployment that reads it.

The output is validated offline against real Kubernetes OpenAPI schemas shipped by the
``kubernetes-validate`` package (strict mode: no unknown fields), and the payload in the
Secret is decoded back to the lock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hpm_boot import cli, handover, payload, target
from hpm_boot.compose import k8s
from hpm_boot.errors import DataError, UsageError
from hpm_boot.log import Log

K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())


def a_lock(n: int = 3) -> dict[str, Any]:
    return {
        "version": 2, "hpm": "0.1.0", "mode": "prod", "targets": [{"python_version": "3.11"}],
        "plan_digest": "sha256:" + "1" * 64,
        "packages": [{"name": f"pkg-{i}", "version": "1.0", "manager": "uv", "requirement": f"pkg-{i}==1.0",
                      "source": "pypi", "source_mode": "prod"} for i in range(n)],
        "pins": [{"name": f"pkg-{i}", "version": "1.0",
                  "files": [{"name": f"pkg_{i}-1.0-py3-none-any.whl", "hash": f"sha256:{i:064x}"}]}
                 for i in range(n)],
    }


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def split(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = {d["kind"]: d for d in docs(text)}
    assert sorted(found) == ["Deployment", "Secret"]
    return found["Secret"], found["Deployment"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("signed", [False, True])
def test_output_passes_the_kubernetes_schemas(version: str, signed: bool) -> None:
    text = k8s.manifests(payload.encode(a_lock(), b"key" if signed else None), "my-app",
                         "registry.example.com/app:1.2")
    for doc in docs(text):
        assert kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_fails_the_schema() -> None:
    """The check is real: a typo in a field is caught."""
    _, deployment = split(k8s.manifests(payload.encode(a_lock()), "my-app", "img:1"))
    container(deployment)["startupProbe"]["periodSecond"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_secret_carries_the_payload_and_the_deployment_reads_it() -> None:
    lock = a_lock()
    text = payload.encode(lock)
    secret, deployment = split(k8s.manifests(text, "my-app", "registry.example.com/app:1.2"))
    assert secret["apiVersion"] == "v1" and secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == "my-app-lock"
    assert secret["stringData"] == {"HPM_LOCK_B64": text}
    assert payload.decode(secret["stringData"]["HPM_LOCK_B64"]) == lock
    assert deployment["apiVersion"] == "apps/v1" and deployment["metadata"]["name"] == "my-app"
    c = container(deployment)
    assert c["image"] == "registry.example.com/app:1.2"
    env = {e["name"]: e for e in c["env"]}
    assert env["HPM_LOCK_B64"] == {"name": "HPM_LOCK_B64", "valueFrom": {
        "secretKeyRef": {"name": "my-app-lock", "key": "HPM_LOCK_B64"}}}
    assert "HPM_LOCK_KEY" not in env
    assert env["HPM_READY_FILE"]["value"] == "/tmp/hpm-ready"
    assert env["UV_CACHE_DIR"]["value"] == "/var/cache/uv"
    # the lock itself never sits in the Deployment
    assert text not in yaml.safe_dump(deployment)
    # a new lock rolls the pods: its digest is in the pod template
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["hpm/lock-digest"] == payload.digest(lock)


def test_probe_cache_labels_and_termination_message() -> None:
    text = k8s.manifests(payload.encode(a_lock()), "my-app", "img:1")
    secret, deployment = split(text)
    c = container(deployment)
    probe = c["startupProbe"]
    assert probe["exec"]["command"] == ["cat", "/tmp/hpm-ready"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 300  # 5 minutes for a JIT install
    assert "# startupProbe: hpm installs the lock just in time" in text
    assert "5 s x 60 failures = 5 minutes" in text
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    (mount,) = c["volumeMounts"]
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/var/cache/uv"}
    assert volume["emptyDir"] == {}
    labels = {"app.kubernetes.io/name": "my-app", "app.kubernetes.io/managed-by": "hpm"}
    assert deployment["metadata"]["labels"] == labels == secret["metadata"]["labels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "my-app"}


def test_signed_payload_reads_the_key_from_its_own_secret() -> None:
    text = k8s.manifests(payload.encode(a_lock(), b"key"), "my-app", "img:1")
    _, deployment = split(text)
    env = {e["name"]: e for e in container(deployment)["env"]}
    ref = env["HPM_LOCK_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-app-lock-key", "key": "HPM_LOCK_KEY"}
    assert "kubectl create secret generic my-app-lock-key" in text
    # the key Secret is the user's to create: never in the output
    assert [d["metadata"]["name"] for d in docs(text)] == ["my-app-lock", "my-app"]


def test_deterministic() -> None:
    text = payload.encode(a_lock(50))
    assert k8s.manifests(text, "a", "img:1") == k8s.manifests(text, "a", "img:1")


def test_ready_file_is_the_one_hpm_run_touches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's HPM_READY_FILE is the variable whose file hpm touches before exec."""
    deployment = docs(k8s.manifests(payload.encode(a_lock(1)), "a", "img:1"))[1]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HPM_READY_FILE"] == k8s.READY_FILE
    ready = tmp_path / "ready"

    class Exec(Exception):
        pass

    def no_exec(*_: object) -> None:
        raise Exec

    monkeypatch.setattr(handover, "exec_target", no_exec)
    with pytest.raises(Exec):
        handover.hand_over(["true"], target.Environment.current(), {"HPM_READY_FILE": str(ready)}, Log({}))
    assert ready.exists()


@pytest.mark.parametrize("name", ["My-App", "-app", "app_1", "a" * 59, ""])
def test_bad_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid Kubernetes name"):
        k8s.manifests(payload.encode(a_lock()), name, "img:1")


def test_bad_image_and_bad_payload() -> None:
    with pytest.raises(UsageError, match="--image"):
        k8s.manifests(payload.encode(a_lock()), "app", "my image")
    with pytest.raises(DataError):
        k8s.manifests("hpm1.not-base64", "app", "img:1")


# --------------------------------------------------------------------------- through the CLI


def lock_argv(tmp_path: Path, wheelhouse: Path, *extra: str) -> list[str]:
    """``hpm lock`` of a one-package registry (hpmtest-app with a ``serve`` entrypoint)
    written under ``tmp_path``, offline from ``wheelhouse``."""
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "app.yaml").write_text(
        "name: hpmtest-app\nversion: 1.0.0\nsources: {prod: {type: pypi}}\n"
        "entrypoints: {serve: hpmtest-app --port 8001}\n")
    return ["lock", "-r", str(reg), "--with", "hpmtest-app", "--no-index", "--find-links", str(wheelhouse),
            *extra]


def test_cli_format_k8s(tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = lock_argv(tmp_path, wheelhouse)
    env = dict(os.environ)
    assert cli.main([*base, "-o", "lock.json"], env) == 0
    capsys.readouterr()
    assert cli.main([*base, "--format", "k8s", "--name", "vlm-bench", "--image", "r.example/app:2"], env) == 0
    out = capsys.readouterr().out
    secret, deployment = split(out)
    for doc in (secret, deployment):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    lock = json.loads((tmp_path / "lock.json").read_text())
    assert payload.decode(secret["stringData"]["HPM_LOCK_B64"]) == lock
    assert deployment["metadata"]["name"] == "vlm-bench"
    assert container(deployment)["image"] == "r.example/app:2"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["hpm/mode"] == "prod"
    # -o writes the same stream to a file
    assert cli.main([*base, "--format", "k8s", "--name", "vlm-bench", "--image", "r.example/app:2",
                     "-o", "k8s.yaml"], env) == 0
    assert (tmp_path / "k8s.yaml").read_text() == out
    # no image: a usage error before any work, never a placeholder image in the Deployment
    capsys.readouterr()
    assert cli.main([*base, "--format", "k8s"], {**env, "HPM_UV": "/nonexistent"}) == 2
    assert capsys.readouterr().err.startswith("hpm: error: --format k8s needs the image the Deployment runs")
    assert cli.main([*base, "--format", "k8s"], {**env, "HPM_IMAGE": "r.example/app:3"}) == 0
    assert container(split(capsys.readouterr().out)[1])["image"] == "r.example/app:3"
    # a bad name is refused before any work
    capsys.readouterr()
    assert cli.main([*base, "--format", "k8s", "--name", "Bad_Name"], {**env, "HPM_UV": "/nonexistent"}) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpm: error: --name 'Bad_Name': not a valid Kubernetes name")


# --------------------------------------------------------------------------- --init-container


def a_lock_with_entrypoints() -> dict[str, Any]:
    lock = a_lock(2)
    lock["packages"][0]["entrypoints"] = {"serve": "python -m pkg0 serve"}
    lock["packages"][1]["entrypoints"] = {"serve": "python -m pkg1 serve", "worker": "python -m pkg1 w"}
    return lock


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("signed", [False, True])
def test_init_container_output_passes_the_kubernetes_schemas(version: str, signed: bool) -> None:
    text = k8s.manifests(payload.encode(a_lock(), b"key" if signed else None), "my-app",
                         "registry.example.com/app:1.2", init_container=True, entrypoint="serve")
    for doc in docs(text):
        assert kubernetes_validate.validate(doc, version, strict=True)


def test_init_container_installs_into_the_shared_venv_and_the_app_runs_warm() -> None:
    text = k8s.manifests(payload.encode(a_lock(), b"key"), "my-app", "img:1", init_container=True,
                         entrypoint="pkg-0:serve")
    _, deployment = split(text)
    spec = deployment["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    app = container(deployment)
    assert init["name"] == "hpm-install" and init["image"] == app["image"] == "img:1"
    assert init["command"] == ["python3", "/opt/hpm/hpm.pyz", "install"]
    assert "command" not in app and "args" not in app  # the image's ENTRYPOINT: hpm run
    init_env = {e["name"]: e for e in init["env"]}
    app_env = {e["name"]: e for e in app["env"]}
    # the same lock (and key) in both, the same venv on the same emptyDir
    for name in ("HPM_LOCK_B64", "HPM_LOCK_KEY", "HPM_VENV"):
        assert init_env[name] == app_env[name], name
    assert app_env["HPM_VENV"]["value"] == "/venv"
    assert app_env["HPM_ENTRYPOINT"]["value"] == "pkg-0:serve" and "HPM_ENTRYPOINT" not in init_env
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert volumes[mounts["/venv"]] == {"name": "venv", "emptyDir": {}}
    assert {m["mountPath"]: m["name"] for m in app["volumeMounts"]} == {"/venv": "venv"}
    # the uv cache is the installer's: the app container has none, nor the install-sized probe
    assert init_env["UV_CACHE_DIR"]["value"] == "/var/cache/uv" and "UV_CACHE_DIR" not in app_env
    assert "startupProbe" not in app and "HPM_READY_FILE" not in app_env
    assert init["terminationMessagePolicy"] == app["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "# hpm-install: installs the lock into /venv" in text
    assert "&id" not in text and "*id" not in text  # plain YAML, no anchors
    assert "`args:` (the command" not in text  # the entrypoint is set
    assert "`args:` (the command" in k8s.manifests(payload.encode(a_lock()), "my-app", "img:1")
    assert "kubectl logs POD -c\n" in text or "kubectl logs POD -c" in text
    # without --init-container: the shape of before
    _, plain = split(k8s.manifests(payload.encode(a_lock()), "my-app", "img:1"))
    assert "initContainers" not in plain["spec"]["template"]["spec"]
    assert "HPM_ENTRYPOINT" not in {e["name"] for e in container(plain)["env"]}


def test_cli_init_container_and_entrypoint(tmp_path: Path, wheelhouse: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = lock_argv(tmp_path, wheelhouse, "--image", "registry.example.com/app:1.0")
    env = dict(os.environ)
    assert cli.main([*base, "--format", "k8s", "--init-container", "--entrypoint", "serve"], env) == 0
    _, deployment = split(capsys.readouterr().out)
    kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["name"] == "hpm-install"
    # an entrypoint the plan does not define: 66, listing those it does, before uv runs
    no_uv = {**env, "HPM_UV": "/nonexistent"}
    assert cli.main([*base, "--format", "k8s", "--entrypoint", "nope"], no_uv) == 66
    err = capsys.readouterr().err
    assert err.startswith("hpm: error: no entrypoint 'nope' in the plan") and "hpmtest-app:serve" in err
    # the k8s options without --format k8s: 2
    for extra in (["--init-container"], ["--entrypoint", "serve"]):
        assert cli.main([*base, "--format", "b64", *extra], env) == 2
        assert "needs --format k8s" in capsys.readouterr().err


def test_ambiguous_entrypoint_choices() -> None:
    from hpm_boot.errors import NotFoundError

    with pytest.raises(NotFoundError, match="choose one of pkg-0:serve, pkg-1:serve"):
        handover.choose_command(a_lock_with_entrypoints(), "serve", [], None, "HPM_ENTRYPOINT")

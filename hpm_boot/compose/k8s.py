"""Kubernetes manifests for ``hpm lock --format k8s``: a Secret and a Deployment.

Two shapes of Deployment. By default its one container runs hpm, which installs at start
and then execs the app (startupProbe sized for the install). With ``init_container``
(``--init-container``), an initContainer ``hpm-install`` runs ``hpm install`` into a
venv on an ``emptyDir`` (``HPM_VENV``), with its own resources and logs, and the app
container runs ``hpm run`` on the same volume: the warm path, no installer, no
install-sized startupProbe holding the app's probes back.

The Secret carries the payload under ``stringData.HPM_LOCK_B64``; the Deployment's
container reads it with ``env[].valueFrom.secretKeyRef``, so the lock never sits in the
Deployment itself. hpm (the image's ENTRYPOINT) installs just in time at start, then
touches ``HPM_READY_FILE`` right before it execs the application; the ``startupProbe``
waits for that file, sized for a cold install. The output is a YAML stream (documents
separated by ``---``) written with ``yaml.safe_dump``, so the same payload and options
always give the same text. Schema-checked in tests against real Kubernetes schemas.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from hpm_boot import contract, payload
from hpm_boot.errors import UsageError

READY_FILE = "/tmp/hpm-ready"
UV_CACHE = "/var/cache/uv"
VENV = "/venv"
INSTALL_CONTAINER = "hpm-install"
#: the initContainer's command: the images of docker/ have hpm.pyz there (as smoke-job.yaml)
INSTALL_COMMAND = ["python3", "/opt/hpm/hpm.pyz", "install"]
PROBE_PERIOD_S = 5
PROBE_FAILURES = 60
"""5 s x 60 = 5 minutes for hpm to install the lock before the kubelet restarts the pod."""
SECRET_KEY = contract.LOCK_B64
KEY_SECRET_KEY = contract.LOCK_KEY
LABEL_NAME = "app.kubernetes.io/name"
ANNOTATION_DIGEST = "hpm/lock-digest"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 58  # the Secret is NAME-lock; a label value holds 63 characters at most

_PROBE_COMMENT = (
    f"# startupProbe: hpm installs the lock just in time, then touches {READY_FILE}\n"
    f"# (HPM_READY_FILE) right before it execs the application. A cold install (git\n"
    f"# builds, large wheels) can take minutes: {PROBE_PERIOD_S} s x {PROBE_FAILURES} failures = "
    f"{PROBE_PERIOD_S * PROBE_FAILURES // 60} minutes\n"
    "# before the kubelet restarts the container. Liveness and readiness probes start\n"
    "# only after this one succeeds; raise failureThreshold for slower installs.\n"
)
_INIT_COMMENT = (
    f"# {INSTALL_CONTAINER}: installs the lock into {VENV} (an emptyDir shared with the app\n"
    "# container) before the app container starts; its own logs (kubectl logs POD -c\n"
    f"# {INSTALL_CONTAINER}), resources and termination message. On failure the pod shows\n"
    "# Init:Error / Init:CrashLoopBackOff and the one-line cause in `kubectl describe pod`.\n"
)
_APP_COMMENT = (
    f"# The app container finds the lock installed in {VENV}: hpm checks it and execs (the\n"
    "# warm path, no installer process), so no install-sized startupProbe is needed.\n"
)


def check_name(name: str) -> str:
    """``name`` if it is a valid Kubernetes object name and label value; else UsageError."""
    if not _DNS_LABEL.match(name) or len(name) > _MAX_NAME:
        raise UsageError(
            f"--name {name!r}: not a valid Kubernetes name",
            f"use lowercase letters, digits and '-', starting and ending with a letter or digit, "
            f"at most {_MAX_NAME} characters",
        )
    return name


def check_image(image: str) -> str:
    """``image`` if it looks like an image reference; else UsageError."""
    if not image or any(c.isspace() for c in image):
        raise UsageError(f"--image {image!r}: expected an image reference like registry.example.com/app:1.0")
    return image


def manifests(payload_text: str, name: str, image: str, plan: object = None, *,
              init_container: bool = False, entrypoint: str | None = None) -> str:
    """A Secret holding ``payload_text`` and a Deployment running ``image`` with it.

    ``init_container``: install in an initContainer into an ``emptyDir`` venv, run in the
    app container (module docstring). ``entrypoint`` sets ``HPM_ENTRYPOINT`` in the app
    container (the caller has checked that the lock defines it).

    ``payload_text`` is an ``hpm1.`` payload (it is decoded once here, to put the lock's
    digest into a pod template annotation: a new lock rolls the pods). When it is
    signed, the container also reads ``HPM_LOCK_KEY`` from the Secret ``NAME-lock-key``,
    which is not part of the output (create it yourself). ``plan`` (a ``resolve.Plan``),
    when given, adds its mode as the ``hpm/mode`` annotation.
    """
    check_name(name)
    check_image(image)
    lock, signed = payload.decode_with_state(payload_text, source="the lock payload")
    secret_name = f"{name}-lock"
    labels = {LABEL_NAME: name, "app.kubernetes.io/managed-by": "hpm"}
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "labels": dict(labels)},
        "type": "Opaque",
        "stringData": {SECRET_KEY: payload_text.strip()},
    }
    lock_env: list[dict[str, Any]] = [
        {"name": SECRET_KEY, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": SECRET_KEY}}},
    ]
    if signed:
        lock_env.append({"name": KEY_SECRET_KEY,
                         "valueFrom": {"secretKeyRef": {"name": f"{name}-lock-key", "key": KEY_SECRET_KEY}}})
    entry_env = [{"name": contract.ENTRYPOINT, "value": entrypoint}] if entrypoint else []
    annotations = {ANNOTATION_DIGEST: payload.digest(lock)}
    mode = getattr(plan, "mode", None)
    if isinstance(mode, str):
        annotations["hpm/mode"] = mode
    cache_mount = {"name": "uv-cache", "mountPath": UV_CACHE}
    volumes: list[dict[str, Any]] = [{"name": "uv-cache", "emptyDir": {}}]
    pod_spec: dict[str, Any] = {}
    if init_container:
        venv_env = {"name": contract.VENV, "value": VENV}
        venv_mount = {"name": "venv", "mountPath": VENV}
        pod_spec["initContainers"] = [{
            "name": INSTALL_CONTAINER,
            "image": image,
            "command": list(INSTALL_COMMAND),
            "env": [*lock_env, venv_env, {"name": "UV_CACHE_DIR", "value": UV_CACHE}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [venv_mount, cache_mount],
        }]
        container: dict[str, Any] = {
            "name": name,
            "image": image,
            "env": [*lock_env, venv_env, *entry_env],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [dict(venv_mount)],
        }
        volumes.insert(0, {"name": "venv", "emptyDir": {}})
    else:
        container = {
            "name": name,
            "image": image,
            "env": [*lock_env, *entry_env, {"name": contract.READY_FILE, "value": READY_FILE},
                    {"name": "UV_CACHE_DIR", "value": UV_CACHE}],
            "startupProbe": {
                "exec": {"command": ["cat", READY_FILE]},
                "periodSeconds": PROBE_PERIOD_S,
                "failureThreshold": PROBE_FAILURES,
            },
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [cache_mount],
        }
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {LABEL_NAME: name}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
    header = (
        f"# Generated by `hpm lock --format k8s`. Apply with: kubectl apply -f FILE\n"
        f"# The Secret {secret_name} carries the lock as {SECRET_KEY}; the Deployment reads it.\n"
    )
    if not entrypoint:
        header += ("# The container runs the image's ENTRYPOINT (hpm run) with no command: add\n"
                   "# `args:` (the command, e.g. [python3, -m, app]) or lock with --entrypoint NAME\n"
                   "# (HPM_ENTRYPOINT).\n")
    if signed:
        header += (f"# The lock is signed: create the Secret {name}-lock-key holding the key as "
                   f"{KEY_SECRET_KEY}\n# (kubectl create secret generic {name}-lock-key "
                   f"--from-file={KEY_SECRET_KEY}=KEYFILE).\n")
    deploy_text = _dump(deployment)
    if init_container:
        deploy_text = _comment_before(deploy_text, "initContainers:", _INIT_COMMENT)
        deploy_text = _comment_before(deploy_text, "containers:", _APP_COMMENT)
    else:
        deploy_text = _comment_before(deploy_text, "startupProbe:", _PROBE_COMMENT)
    return header + "---\n" + _dump(secret) + "---\n" + deploy_text


def _comment_before(text: str, key: str, comment: str) -> str:
    """``comment`` on the lines before the line ``key`` (at its indentation)."""
    found = re.search(rf"^( *){re.escape(key)}$", text, flags=re.MULTILINE)
    assert found is not None, key
    indent = found.group(1)
    lines = "".join(indent + line + "\n" for line in comment.splitlines())
    return text[: found.start()] + lines + text[found.start():]


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes a dict used twice twice, not as an anchor (&id001)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1_000_000,
                     allow_unicode=True)

"""Placeholder: Kubernetes manifests for `hpm lock --format k8s`; being written."""

from __future__ import annotations

from hpm_boot.errors import UsageError


def manifests(payload_text: str, name: str, image: str, plan: object) -> str:
    raise UsageError("--format k8s is not available yet")

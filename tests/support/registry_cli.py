"""Registries written by a test, and ``hpm`` run on them in-process (no tests in this module).

``write`` puts manifests (or any text files) below a directory, ``pkg`` makes the text of a
minimal manifest, ``run`` calls ``hpm_boot.cli.main`` with pytest's ``capsys`` capturing its
output, and ``plan_json`` is ``hpm plan --json`` through ``run``, parsed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hpm_boot import cli

__all__ = ["pkg", "plan_json", "run", "write"]


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text, dedented) below ``root``; return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def pkg(name: str, version: str = "1.0.0", extra: str = "", **fields: str) -> str:
    """A manifest of ``name`` with one PyPI source, followed by ``extra`` (YAML text) and
    one ``key: value`` line for each of ``fields``."""
    lines = "".join(f"{k}: {v}\n" for k, v in fields.items())
    return f"name: {name}\nversion: {version}\nsources:\n  prod: {{type: pypi}}\n{extra}{lines}"


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``hpm ARGV`` in-process: (exit code, stdout, stderr)."""
    rc = cli.main(list(argv), env or {})
    out, err = capsys.readouterr()
    return rc, out, err


def plan_json(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``hpm plan --json ARGV`` in-process; it must exit 0; the plan, parsed."""
    rc, out, err = run(capsys, "plan", "--json", *argv, env=env)
    assert rc == 0, err
    return json.loads(out)

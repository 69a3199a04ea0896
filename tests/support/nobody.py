"""Running hpm as another user (uid 65534) on a machine where the tests run as root.

pytest's temporary directories and this machine's pyenv (under /root) are private to
root, so such a test works in a world-readable directory of its own (``shared_tmpdir``)
and runs hpm with the system interpreter, through a venv that sees hpm and its
dependencies (:func:`tests.support.hpm_venv.hpm_in_venv`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
SYSTEM_PYTHON = "/usr/bin/python3"


def nobody_can_run_python() -> bool:
    """Root, setpriv, and a system Python of this version (the venv's msgspec must fit)."""
    if os.getuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([*NOBODY, SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True)
    return probe.stdout.strip() == str(sys.version_info[:2])


def skip_unless_nobody_can_run_python() -> None:
    """Skip the calling test unless :func:`nobody_can_run_python`."""
    if not nobody_can_run_python():  # pragma: no cover - depends on the machine
        pytest.skip("needs root, setpriv and a system Python of this version to run hpm as another user")


@contextmanager
def shared_tmpdir() -> Iterator[Path]:
    """A temporary directory every user can read and enter (pytest's are private to root),
    removed with its contents afterwards."""
    shared = Path(tempfile.mkdtemp(prefix="hpm-nobody-"))
    try:
        shared.chmod(0o755)
        yield shared
    finally:
        shutil.rmtree(shared, ignore_errors=True)

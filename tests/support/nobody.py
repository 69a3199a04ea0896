"""Running hpm as another user (uid 65534) on a machine where the tests run as root.

pytest's temporary directories and this machine's pyenv (under /root) are private to
root, so such a test works in a world-readable directory of its own and runs hpm with
the system interpreter, through a venv that sees hpm and its dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.factory import make_venv

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
SYSTEM_PYTHON = "/usr/bin/python3"


def nobody_can_run_python() -> bool:
    """Root, setpriv, and a system Python of this version (the venv's msgspec must fit)."""
    if os.getuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([*NOBODY, SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True)
    return probe.stdout.strip() == str(sys.version_info[:2])


def hpm_in_venv(path: Path, python: str = sys.executable) -> Path:
    """A throwaway venv with hpm importable (a .pth, like an editable install) and its
    dependencies (a .pth to a directory holding only PyYAML, packaging and msgspec)."""
    py = make_venv(path, python)
    site = next((path / "lib").glob("python3.*/site-packages"))
    deps = path.parent / f"{path.name}-deps"
    deps.mkdir()
    here = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p, "msgspec").is_dir()))
    for name in ("yaml", "_yaml", "msgspec", "packaging"):
        if (here / name).exists():
            (deps / name).symlink_to(here / name)
    (site / "hpm_dev.pth").write_text(f"{ROOT}\n{deps}\n")
    return py

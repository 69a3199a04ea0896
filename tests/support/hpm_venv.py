"""A throwaway venv in which this checkout of hpm is importable, as after an editable install.

Used where hpm must run with an interpreter other than the test's own: as the system
interpreter that is also the install target, as another user (:mod:`tests.support.nobody`),
and by the benches.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.factory import make_venv

ROOT = Path(__file__).resolve().parents[2]


def hpm_in_venv(path: Path, python: str = sys.executable, env: Mapping[str, str] | None = None) -> Path:
    """A throwaway venv with hpm importable (a .pth, like an editable install) and its
    dependencies (a .pth to a directory holding only PyYAML, packaging and msgspec).

    ``env`` is the environment ``uv venv`` runs in; the venv's interpreter is returned."""
    py = make_venv(path, python, env=env)
    site = next((path / "lib").glob("python3.*/site-packages"))
    deps = path.parent / f"{path.name}-deps"
    deps.mkdir()
    here = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p, "msgspec").is_dir()))
    for name in ("yaml", "_yaml", "msgspec", "packaging"):
        if (here / name).exists():
            (deps / name).symlink_to(here / name)
    (site / "hpm_dev.pth").write_text(f"{ROOT}\n{deps}\n")
    return py

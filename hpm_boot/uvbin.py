"""Finding the installers: ``uv`` (HPM_UV, PATH, the ``uv`` Python package), pip, conda.
"""

from __future__ import annotations

import os
import sys

from hpm_boot import contract
from hpm_boot.errors import InstallerMissingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def which(name: str, path: str | None = None) -> str | None:
    """``shutil.which`` for POSIX without importing ``shutil`` (which imports ``re``)."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) and os.path.isfile(name) else None
    for directory in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    return None


def find_uv(environ: Mapping[str, str] | None = None) -> str:
    """``HPM_UV``, else ``uv`` on PATH, else the binary of the ``uv`` Python package."""
    environ = os.environ if environ is None else environ
    given = environ.get(contract.UV)
    if given:
        if os.access(given, os.X_OK) and os.path.isfile(given):
            return given
        found = which(given, path=environ.get("PATH"))
        if found:
            return found
        raise InstallerMissingError(f"HPM_UV={given}: no such executable",
                                    "point HPM_UV at a uv binary, or unset it to search PATH")
    found = which("uv", path=environ.get("PATH"))
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.access(beside, os.X_OK):
        return beside
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    raise InstallerMissingError(
        "uv is not installed: not on PATH, HPM_UV unset, no uv Python package",
        "install it (pip install uv, or copy the binary into the image) or set HPM_UV=/path/to/uv",
    )


def find_conda(environ: Mapping[str, str] | None = None) -> str:
    """The first of conda, mamba, micromamba on PATH (HPM_CONDA wins)."""
    environ = os.environ if environ is None else environ
    for name in [environ.get(contract.CONDA, ""), "conda", "mamba", "micromamba"]:
        if name:
            found = which(name, path=environ.get("PATH"))
            if found:
                return found
    raise InstallerMissingError(
        "a manifest asks for manager: conda, but none of conda, mamba, micromamba is on PATH",
        "install one of them, or set HPM_CONDA=/path/to/conda",
    )

"""Finding the installers: ``uv`` (HPM_UV, PATH, the ``uv`` Python package), pip, conda.

Standard library only: the boot path calls this when it has to install.
"""

from __future__ import annotations

import os
import shutil
import sys

from hpm_boot.errors import InstallerMissingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def find_uv(env: Mapping[str, str] | None = None) -> str:
    """``HPM_UV``, else ``uv`` on PATH, else the binary of the ``uv`` Python package."""
    env = os.environ if env is None else env
    given = env.get("HPM_UV")
    if given:
        if os.access(given, os.X_OK) and os.path.isfile(given):
            return given
        found = shutil.which(given, path=env.get("PATH"))
        if found:
            return found
        raise InstallerMissingError(f"HPM_UV={given}: no such executable",
                                    "point HPM_UV at a uv binary, or unset it to search PATH")
    found = shutil.which("uv", path=env.get("PATH"))
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


def find_conda(env: Mapping[str, str] | None = None) -> str:
    """The first of conda, mamba, micromamba on PATH (HPM_CONDA wins)."""
    env = os.environ if env is None else env
    for name in [env.get("HPM_CONDA", ""), "conda", "mamba", "micromamba"]:
        if name:
            found = shutil.which(name, path=env.get("PATH"))
            if found:
                return found
    raise InstallerMissingError(
        "a manifest asks for manager: conda, but none of conda, mamba, micromamba is on PATH",
        "install one of them, or set HPM_CONDA=/path/to/conda",
    )

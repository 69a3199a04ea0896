"""Small filesystem helpers every stage shares: whole-or-nothing writes, and the
nearest existing directory above a path that is not there yet."""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it (with ``mode`` when
    given), then a rename. The name carries a random part, since several containers
    (pid 1 each) may share a volume."""
    tmp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def nearest_existing(path: str) -> str:
    """``path`` or its closest ancestor that exists: whoever creates ``path`` must be able
    to write there."""
    while path and not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path

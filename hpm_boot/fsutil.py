"""Small filesystem helpers every stage shares: whole-or-nothing writes, the nearest
existing directory above a path that is not there yet, and the shared lock that keeps
``hpm gc`` off what a running hpm uses."""

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


def hold(lock: str) -> int | None:
    """A shared ``flock`` on the file ``lock`` (made when missing, where that is allowed),
    on a descriptor the caller keeps: O_CLOEXEC drops it at exec unless the caller makes it
    inheritable. ``hpm gc`` takes the lock exclusively before it removes what ``lock``
    guards, and unlinks ``lock`` under it: None when that happened before the lock was
    ours (what it guarded is gone). OSError when ``lock`` can be neither made nor opened,
    or not locked; ImportError without ``fcntl``."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        import errno  # here only: write_atomic, on every first start, needs no import

        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)  # a read-only place can still be used
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH)  # waits while an extraction or a removal holds it
        if os.fstat(fd).st_ino == os.stat(lock).st_ino:
            return fd
    except FileNotFoundError:
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None

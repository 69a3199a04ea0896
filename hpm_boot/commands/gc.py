"""``hpm gc``: remove stale ephemeral environments.

An environment is a directory ``<root>/<id>`` (``HPM_EPHEMERAL_DIR``, else
``./.hpm/ephemeral``). Each run touches ``hpm-last-used`` in it and holds a shared
``flock`` on ``hpm-use.lock`` while it lives; gc takes that lock exclusively and without
waiting, so an environment in use is never removed, only reported. A removed
directory is first renamed away (atomically), then deleted, so a run that starts at
the same moment either sees the old directory whole or makes a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from dataclasses import dataclass

from hpm_boot.errors import NotWritableError, UsageError
from hpm_boot.reuse import INDEX, LAST_USED, PROJECT, USE_LOCK, ephemeral_root, read_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LEFTOVER_AGE = 3600.0  # .tmp-*/.trash-* older than this are remains of an interrupted run
DEFAULT_KEEP = 3


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (or a bare number of seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise UsageError(f"--older-than {text!r}: expected a duration like 7d, 12h, 30m or 90s")
    return float(m[1]) * _UNITS[m[2] or "s"]


@dataclass
class Env:
    id: str
    path: str
    last_used: float
    size: int


def _last_used(path: str) -> float:
    for name in (LAST_USED, PROJECT):
        try:
            return os.stat(os.path.join(path, name)).st_mtime
        except OSError:
            continue
    return os.stat(path).st_mtime


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def environments(root: str) -> list[Env]:
    """Every ephemeral environment under ``root``, most recently used first."""
    out = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isfile(os.path.join(path, PROJECT)):
            continue
        with contextlib.suppress(OSError):
            out.append(Env(name, path, _last_used(path), _size(path)))
    return sorted(out, key=lambda e: (-e.last_used, e.id))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{seconds:.0f}s"


def remove(environ: Env, root: str) -> bool:
    """Remove ``environ`` unless a run holds it; True when removed."""
    try:
        fd = os.open(os.path.join(environ.path, USE_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise NotWritableError(f"cannot remove {environ.path}: {exc.strerror}",
                               f"check the permissions of {root}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        trash = os.path.join(root, f".trash-{environ.id}-{os.getpid()}")
        try:
            os.rename(environ.path, trash)
        except OSError as exc:
            raise NotWritableError(f"cannot remove {environ.path}: {exc.strerror}",
                                   f"check the permissions of {root}") from None
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _clean_leftovers(root: str, now: float, dry_run: bool) -> None:
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name.startswith((".tmp-", ".trash-")):
                with contextlib.suppress(OSError):
                    if now - os.stat(path).st_mtime > LEFTOVER_AGE and not dry_run:
                        shutil.rmtree(path, ignore_errors=True)
    index = os.path.join(root, INDEX)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(index):  # fast-path records of removed environments
            path = os.path.join(index, name)
            record = read_record(path)
            target = record.get("dir", "") if isinstance(record, dict) else ""
            if not os.path.isdir(str(target)) and not dry_run:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=int, metavar="N", default=None,
                        help=f"keep the N most recently used environments (default {DEFAULT_KEEP} "
                        "when --older-than is not given)")
    parser.add_argument("--older-than", metavar="DURATION",
                        help="remove only environments last used longer ago than this (7d, 12h, 30m)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    root = ephemeral_root(environ)
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"--keep {args.keep}: expected 0 or more")
    keep = args.keep if args.keep is not None else (None if args.older_than else DEFAULT_KEEP)
    max_age = parse_duration(args.older_than) if args.older_than else None
    now = time.time()
    envs = environments(root)
    if not envs:
        print(f"no ephemeral environments in {root}")
        _clean_leftovers(root, now, args.dry_run)
        return 0
    removed = freed = busy = 0
    for rank, e in enumerate(envs):
        age = now - e.last_used
        if (keep is not None and rank < keep) or (max_age is not None and age <= max_age):
            print(f"kept     {e.id}  last used {_age(age)} ago  {_human(e.size)}")
            continue
        if args.dry_run:
            print(f"would remove {e.id}  last used {_age(age)} ago  {_human(e.size)}")
            removed, freed = removed + 1, freed + e.size
        elif remove(e, root):
            print(f"removed  {e.id}  last used {_age(age)} ago  {_human(e.size)}")
            removed, freed = removed + 1, freed + e.size
        else:
            print(f"in use   {e.id}  kept: a running process holds it")
            busy += 1
    _clean_leftovers(root, now, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {removed} of {len(envs)} environments ({_human(freed)})"
          + (f"; {busy} in use" if busy else "") + f" in {root}")
    return 0

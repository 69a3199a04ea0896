"""``hpm gc``: remove stale ephemeral environments, and what other hpm builds unpacked.

An environment is a directory ``<root>/<id>`` (``HPM_EPHEMERAL_DIR``, else
``./.hpm/ephemeral``). Each run touches ``hpm-last-used`` in it and holds a shared
``flock`` on ``hpm-use.lock`` while it lives; gc takes that lock exclusively and without
waiting, so an environment in use is never removed, only reported. A removed
directory is first renamed away (atomically), then deleted, so a run that starts at
the same moment either sees the old directory whole or makes a new one.

The cache (``prune_cache``): every hpm.pyz build unpacks its lib zip (``lib/lib-KEY.zip``)
and its compiled wheels (``wheels/NAME-VERSION-SHA``) into a cache place
(``_pyz.cache_places``). gc removes those of other builds from every place. A running hpm
holds a shared ``flock`` on ``NAME.lock`` beside what it uses (``_pyz.hold``), and an
extraction holds it exclusively; gc takes it exclusively without waiting, renames the
entry away, deletes it, then unlinks the lock file (a starting hpm checks that the lock
it got is still the file at that path, and looks again otherwise). The running build's
own entries are never touched.
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


@dataclass
class Cached:
    place: str
    name: str  # "lib/lib-KEY.zip", "wheels/msgspec-0.18.6-SHA"
    size: int

    @property
    def path(self) -> str:
        return os.path.join(self.place, self.name)


def cached(places: list[str]) -> list[Cached]:
    """What hpm builds unpacked in ``places`` (lock files and temporaries aside)."""
    out = []
    for place in places:
        for sub in ("lib", "wheels"):
            with contextlib.suppress(OSError):
                for name in sorted(os.listdir(os.path.join(place, sub))):
                    if name.startswith(".") or name.endswith(".lock"):
                        continue
                    path = os.path.join(place, sub, name)
                    size = _size(path) if os.path.isdir(path) else os.lstat(path).st_size
                    out.append(Cached(place, f"{sub}/{name}", size))
    return out


def _read_only(directory: str) -> str | None:
    """Why ``directory`` cannot be written (None: it can)."""
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "read-only file system"
    return "permission denied"


def remove_cached(entry: Cached) -> str:
    """Remove ``entry`` unless a running hpm holds it: "removed" or "in use"."""
    lock = f"{entry.path}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "in use"
        if not os.path.lexists(entry.path):  # another gc was first
            return "removed"
        directory, base = os.path.split(entry.path)
        trash = os.path.join(directory, f".trash-{base}-{os.getpid()}")
        os.rename(entry.path, trash)
        if os.path.isdir(trash):
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.unlink(trash)
        os.unlink(lock)  # under the lock: a starter that waited on it sees it is stale
        return "removed"
    finally:
        os.close(fd)


def _cache_leftovers(places: list[str], now: float) -> None:
    """Temporaries of extractions that were killed (an hour old: none is still running)."""
    for place in places:
        for sub in ("lib", "wheels"):
            directory = os.path.join(place, sub)
            with contextlib.suppress(OSError):
                for name in os.listdir(directory):
                    path = os.path.join(directory, name)
                    if name.startswith(".") and not name.endswith(".lock") and \
                            now - os.lstat(path).st_mtime > LEFTOVER_AGE:
                        if os.path.isdir(path):
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            os.unlink(path)


def prune_cache(dry_run: bool) -> None:
    """Remove (or list, ``dry_run``) other builds' unpacked files from every cache place;
    NotWritableError (73) at the end when some of them sit where gc cannot write."""
    from hpm_boot import _pyz

    places = [p for p in _pyz.cache_places() if os.path.isdir(p)]
    own = _pyz.own_cache_names()
    entries = cached(places)
    removed = freed = busy = 0
    stuck: dict[str, str] = {}
    for e in entries:
        if e.name in own:
            print(f"kept     {e.path}  {_human(e.size)}  (this hpm)")
            continue
        problem = _read_only(os.path.dirname(e.path))
        if problem:
            stuck[os.path.dirname(e.path)] = problem
            print(f"cannot remove {e.path}  {_human(e.size)}  ({problem})")
            continue
        if dry_run:
            print(f"would remove {e.path}  {_human(e.size)}")
            removed, freed = removed + 1, freed + e.size
            continue
        try:
            state = remove_cached(e)
        except OSError as exc:
            stuck[os.path.dirname(e.path)] = exc.strerror or str(exc)
            print(f"cannot remove {e.path}  {_human(e.size)}  ({exc.strerror})")
            continue
        if state == "in use":
            print(f"in use   {e.path}  kept: a running hpm holds it")
            busy += 1
        else:
            print(f"removed  {e.path}  {_human(e.size)}")
            removed, freed = removed + 1, freed + e.size
    if not dry_run:
        _cache_leftovers(places, time.time())
    verb = "would remove" if dry_run else "removed"
    where = ", ".join(places) or "no cache directory"
    print(f"{verb} {removed} of {len(entries)} cache entries ({_human(freed)})"
          + (f"; {busy} in use" if busy else "") + f" in {where}")
    if stuck:
        first, why = next(iter(stuck.items()))
        raise NotWritableError(
            f"cannot prune the hpm cache in {first}: {why}"
            + (f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""),
            "run hpm gc as the user who owns it, or where it is writable (an image's baked cache "
            "is pruned by building the image again)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=int, metavar="N", default=None,
                        help=f"keep the N most recently used environments (default {DEFAULT_KEEP} "
                        "when --older-than is not given)")
    parser.add_argument("--older-than", metavar="DURATION",
                        help="remove only environments last used longer ago than this (7d, 12h, 30m)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--no-cache", action="store_true",
                       help="leave the cache alone: prune ephemeral environments only")
    scope.add_argument("--cache-only", action="store_true",
                       help="prune the cache only (what other hpm builds unpacked)")


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"--keep {args.keep}: expected 0 or more")
    max_age = parse_duration(args.older_than) if args.older_than else None
    if not args.cache_only:
        prune_ephemeral(args, environ, max_age)
    if not args.no_cache:
        prune_cache(args.dry_run)
    return 0


def prune_ephemeral(args: argparse.Namespace, environ: Mapping[str, str], max_age: float | None) -> None:
    """The ephemeral environments: keep the N most recent and/or those used recently."""
    root = ephemeral_root(environ)
    keep = args.keep if args.keep is not None else (None if args.older_than else DEFAULT_KEEP)
    now = time.time()
    envs = environments(root)
    if not envs:
        print(f"no ephemeral environments in {root}")
        _clean_leftovers(root, now, args.dry_run)
        return
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

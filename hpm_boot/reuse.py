"""Reusing an ephemeral environment: ``hpm run --ephemeral`` and ``hpm shell`` when
nothing changed since the last run.

An ephemeral environment is a generated project, ``<root>/<id>/pyproject.toml``, where
``<root>`` is ``HPM_EPHEMERAL_DIR`` or ``./.hpm/ephemeral`` and ``<id>`` is a digest of
that file (``compose.ephemeral`` writes and syncs it). A run execs
``uv run --project DIR --no-sync -- CMD``, so signals and exit codes are uv's.

Concurrency: a directory is never rewritten. Every run holds a shared ``flock`` on
``DIR/hpm-use.lock`` for its whole life (the descriptor survives the exec), and
``hpm gc`` removes only directories it can lock exclusively.

The reuse record: after a successful run, ``<root>/.index/<key>.rec``, keyed by the
command's options, the selection variables and the working directory, lists every file
the plan was made from with its ``stat`` signature. The next run of the same command,
with nothing changed, skips YAML, resolution and git: ``fast_ephemeral`` checks the
signatures and the sync marker and execs uv.
"""

from __future__ import annotations

import marshal
import os
import sys

from hpm_boot import __version__, contract, fastargs
from hpm_boot.errors import HpmError, InstallerMissingError, NotWritableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

DEFAULT_ROOT = os.path.join(".hpm", "ephemeral")
PROJECT = "pyproject.toml"
USE_LOCK = "hpm-use.lock"  # shared while a run uses the env; gc needs it exclusively
SYNC_LOCK = "hpm-sync.lock"  # exclusive while hpm checks and syncs the env
LAST_USED = "hpm-last-used"  # touched at every run; gc orders by its mtime
SYNCED = "hpm-synced"  # marshal; written after a successful sync: what it was synced from
INDEX = ".index"
META_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
#: variables that change what a command resolves to: part of the record's key
KEY_VARS = (contract.RUN_MODE, contract.REGISTRY, contract.WITH, contract.GROUPS, contract.PROVIDERS,
            contract.UV, contract.EPHEMERAL_DIR)
#: removed from uv's environment: lock payloads and keys, and what would move the venv
DROPPED_VARS = (*contract.SCRUBBED, "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")


# ---------------------------------------------------------------- directories and locks


def ephemeral_root(environ: Mapping[str, str]) -> str:
    """``HPM_EPHEMERAL_DIR``, else ``./.hpm/ephemeral``, as an absolute path."""
    return os.path.abspath(environ.get(contract.EPHEMERAL_DIR) or DEFAULT_ROOT)


def not_writable(path: str, exc: OSError) -> NotWritableError:
    return NotWritableError(
        f"cannot write the ephemeral environment under {path}: {exc.strerror or exc}",
        f"make it writable, or put ephemeral environments elsewhere with {contract.EPHEMERAL_DIR}=DIR "
        f"(for example {contract.EPHEMERAL_DIR}=$HOME/.cache/hpm/ephemeral)",
    )


class Gone(Exception):
    """The directory was removed (by gc) while we waited for its lock."""


def hold(directory: str) -> int:
    """Take the shared in-use lock of ``directory`` (``fsutil.hold``); the fd stays open
    across exec (``exec_uv`` makes it inheritable)."""
    from hpm_boot import fsutil

    try:
        fd = fsutil.hold(os.path.join(directory, USE_LOCK))
    except FileNotFoundError:
        raise Gone() from None
    if fd is None:
        raise Gone()
    try:
        with open(os.path.join(directory, LAST_USED), "a"):
            pass
        os.utime(os.path.join(directory, LAST_USED))
    except OSError:
        pass  # a read-only root: usable, just not ordered for gc
    return fd


def signature(path: str) -> list[int] | None:
    """What a change of ``path`` changes: mtime, size, inode (None: absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def kind(path: str) -> str | None:
    if os.path.isdir(path):
        return "dir"
    return "file" if os.path.exists(path) else None


def local_fingerprint(paths: Sequence[str]) -> list[Any]:
    """What makes uv rebuild a local package: its metadata files' signatures."""
    out: list[Any] = []
    for path in paths:
        if os.path.isdir(path):
            out.append([path, [signature(os.path.join(path, m)) for m in META_FILES]])
        else:
            out.append([path, signature(path)])
    return out


def read_record(path: str) -> Any:
    """A record or marker (``marshal``: builtin, so reading costs no import), or None."""
    try:
        with open(path, "rb") as f:
            return marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None


def write_record(path: str, data: Any) -> None:
    """Write ``data`` (marshal) atomically."""
    from hpm_boot.fsutil import write_atomic

    write_atomic(path, marshal.dumps(data))


def is_synced(directory: str, locals_: Sequence[str]) -> bool:
    """The env was synced from this project and its local packages' metadata is unchanged."""
    marker = read_record(os.path.join(directory, SYNCED))
    return (isinstance(marker, dict) and marker.get("locals") == local_fingerprint(locals_)
            and os.path.isfile(os.path.join(directory, ".venv", "pyvenv.cfg")))


def uv_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in DROPPED_VARS}


def run_argv(uv: str, directory: str, uv_args: Sequence[str], cmd: Sequence[str]) -> list[str]:
    """``uv run --no-sync``: hpm synced the env (or checked that it is synced) just before.

    No ``--python``: the env exists already, and asking uv for an interpreter costs it
    a query of that interpreter (~20 ms)."""
    return [uv, "run", "--project", directory, "--no-sync", *uv_args, "--", *cmd]


def exec_uv(argv: Sequence[str], fd: int, environ: Mapping[str, str]) -> NoReturn:
    """Become uv, keeping the in-use lock ``fd`` open (inherited) for the run's whole life."""
    from hpm_boot.handover import before_exec

    os.set_inheritable(fd, True)
    before_exec()
    try:
        os.execve(argv[0], list(argv), uv_environ(environ))
    except OSError as exc:
        raise InstallerMissingError(f"cannot run uv at {argv[0]}: {exc.strerror}",
                                    "install uv or set HPM_UV") from None


def exec_record(record: Mapping[str, Any], cmd: Sequence[str], fd: int,
                environ: Mapping[str, str]) -> NoReturn:
    """Become ``uv run`` of ``cmd`` in the environment of ``record``, in its mode (RUN_MODE)."""
    from hpm_boot.handover import with_mode

    exec_uv(run_argv(record["uv"], record["dir"], record["uv_args"], cmd), fd,
            with_mode(environ, record.get("mode")))


# ---------------------------------------------------------------- the reuse record


def _key(command: str, opts: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str]:
    """(record file name, full key): what the command resolves from, except file contents.

    The name is two cheap checksums (hashlib would load OpenSSL); the record stores the
    full key and the fast path compares it, so a collision only costs a slow run."""
    import zlib

    data = {"command": command, "opts": dict(opts), "cwd": os.getcwd(), "hpm": __version__,
            "python": sys.executable, "env": {k: environ.get(k) for k in KEY_VARS}}
    text = repr(data)  # insertion order is fixed: fastargs.EPHEMERAL.empty(), KEY_VARS
    raw = text.encode()
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}", text


#: argparse destinations whose name differs from the grammar's
_DEST = {"with": "with_"}


def opts_of(args: argparse.Namespace) -> dict[str, Any]:
    """The record key's view of options parsed by argparse: what ``fastargs.parse`` gives
    for the same command line."""
    opts = fastargs.EPHEMERAL.empty()
    for name, default in opts.items():
        value = getattr(args, _DEST.get(name, name), None)
        if isinstance(default, list):
            opts[name] = list(value or [])
        elif isinstance(default, bool):
            opts[name] = bool(value)
        else:
            opts[name] = value
    return opts


def watch_registry(dirs: Sequence[str]) -> list[list[Any]]:
    """Signatures of every directory and YAML file the registry scan reads."""
    out: list[list[Any]] = []
    for directory in dirs:
        for root, subdirs, files in os.walk(directory):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            out.append([root, signature(root)])
            out.extend([os.path.join(root, f), signature(os.path.join(root, f))]
                       for f in sorted(files) if f.endswith((".yaml", ".yml")))
    return out


def watch_git(url: str, ref: str) -> list[list[Any]] | None:
    """Files whose change could move ``ref`` in a local repository; None for a remote one."""
    import re

    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return []
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(url).path)
    elif "://" not in url and os.path.isabs(url):
        path = url
    else:
        return None
    gitdir = os.path.join(path, ".git") if os.path.isdir(os.path.join(path, ".git")) else path
    files = ["packed-refs", f"refs/tags/{ref}", f"refs/heads/{ref}", "HEAD" if ref == "HEAD" else None]
    return [[os.path.join(gitdir, f), signature(os.path.join(gitdir, f))] for f in files if f]


def remember(command: str, opts: Mapping[str, Any], environ: Mapping[str, str],
             record: dict[str, Any]) -> None:
    """Keep ``record`` for the next run of ``command`` with ``opts`` (best effort)."""
    root = ephemeral_root(environ)
    name, record["key"] = _key(command, opts, environ)
    try:
        os.makedirs(os.path.join(root, INDEX), exist_ok=True)
        write_record(os.path.join(root, INDEX, name + ".rec"), record)
    except OSError:
        pass  # only the next run's speed depends on it


def fast_ephemeral(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Exec a reused ephemeral env when nothing changed since the last run; None otherwise."""
    command, tokens, cmd = fastargs.split(argv)
    if command == "shell":
        if cmd is not None:
            return None
        cmd = [environ.get("SHELL") or "/bin/sh"]
    elif command != "run" or cmd is None or "--ephemeral" not in tokens:
        return None
    opts = fastargs.parse(tokens, fastargs.EPHEMERAL)
    if opts is None or opts["mode"] not in (None, "dev", "prod"):
        return None
    root = ephemeral_root(environ)
    name, key = _key(command, opts, environ)
    record = read_record(os.path.join(root, INDEX, name + ".rec"))
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    try:
        if any(signature(path) != sig for path, sig in record["watch"]):
            return None
        if any(kind(path) != k for path, k in record["kinds"]):
            return None
        directory, uv = record["dir"], record["uv"]
        if not os.access(uv, os.X_OK) or not is_synced(directory, record["locals"]):
            return None
        fd = hold(directory)
    except (Gone, KeyError, TypeError, ValueError, OSError):
        return None
    if command == "run" and record.get("entry"):
        cmd = [*record["entry"], *cmd]
    elif command == "run" and not cmd:
        os.close(fd)
        return None
    if record.get("warnings") or environ.get(contract.LOG, "").strip().lower() == "debug":
        from hpm_boot.log import Log

        log = Log(environ)
        for warning in record.get("warnings", []):
            log.warning(warning)
        log.debug(f"reusing ephemeral environment {os.path.basename(directory)} (nothing changed)")
    try:
        exec_record(record, cmd, fd, environ)
    except HpmError as exc:
        from hpm_boot.log import Log

        return Log(environ).error(exc)

"""Ephemeral environments: ``hpm run --ephemeral`` and ``hpm shell``.

The plan becomes a generated project, ``<root>/<id>/pyproject.toml`` (``[tool.uv.sources]``
with git at the locked SHA, local paths, per-package indexes), where ``<root>`` is
``HPM_EPHEMERAL_DIR`` or ``./.hpm/ephemeral`` and ``<id>`` is a digest of the generated
file: an unchanged plan finds its directory again, a changed plan (even a moved tag)
gets a new one. hpm syncs it once with ``uv sync`` and then execs
``uv run --project DIR --no-sync -- CMD``, so signals and exit codes are uv's.

Concurrency: a directory is never rewritten. Every run holds a shared ``flock`` on
``DIR/hpm-use.lock`` for its whole life (the descriptor survives the exec), and
``hpm gc`` removes only directories it can lock exclusively.

Reuse fast path: after a successful run, a small record (``<root>/.index/<key>.rec``,
keyed by the command's options, the selection variables and the working directory)
lists every file the plan was made from with its ``stat`` signature. The next run of
the same command, with nothing changed, skips YAML, resolution and git: it checks the
signatures, the sync marker and execs uv. This module imports only the standard
library's cheapest modules at the top (``marshal`` for the records, no ``json``,
``hashlib`` or ``re``), so that path costs about 2 ms above the interpreter's start.
"""

from __future__ import annotations

import errno
import marshal
import os
import sys

from hpm_boot import __version__
from hpm_boot.boot import SCRUBBED
from hpm_boot.errors import HpmError, InstallerMissingError, NotWritableError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

    from hpm_boot.log import Log
    from hpm_boot.resolve import Plan

ROOT_ENV = "HPM_EPHEMERAL_DIR"
DEFAULT_ROOT = os.path.join(".hpm", "ephemeral")
PROJECT = "pyproject.toml"
USE_LOCK = "hpm-use.lock"  # shared while a run uses the env; gc needs it exclusively
SYNC_LOCK = "hpm-sync.lock"  # exclusive while hpm checks and syncs the env
LAST_USED = "hpm-last-used"  # touched at every run; gc orders by its mtime
SYNCED = "hpm-synced"  # marshal; written after a successful sync: what it was synced from
INDEX = ".index"
META_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
# Variables that change what a command resolves to; part of the fast-path key.
KEY_VARS = ("RUN_MODE", "HPM_REGISTRY", "HPM_WITH", "HPM_GROUPS", "HPM_PROVIDERS", "HPM_UV", ROOT_ENV)
# Removed from uv's environment: lock payloads and keys (what ``boot`` removes from the
# target's: boot is imported for the exec anyway, payload would cost the fast path its
# imports), and what would move the venv.
DROPPED_VARS = (*SCRUBBED, "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")


# ---------------------------------------------------------------- the generated project


def _toml_str(value: str) -> str:
    import json

    return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes


def generate(plan: Plan, python: str, uv_args: Sequence[str]) -> str:
    """The ``pyproject.toml`` of the plan's ephemeral environment (deterministic text)."""
    from hpm_boot.lock import resolve_git_ref
    from hpm_boot.manifest import GitSource, LocalSource, PypiSource, UrlSource

    deps: list[str] = []
    sources: list[str] = []
    indexes: list[str] = []
    for p in plan.packages:
        extras = f"[{','.join(p.extras)}]" if p.extras else ""
        if p.manager == "conda":
            raise InstallerMissingError(
                f"{p.name} asks for manager: conda, which ephemeral environments (made by uv) cannot use",
                "run without --ephemeral, or give the package a uv/pip source",
            )
        source = p.source
        if isinstance(source, GitSource):
            sha = resolve_git_ref(source.url, source.ref, p.name)
            deps.append(f"{p.name}{extras}")
            fields = [f"git = {_toml_str(source.url)}", f"rev = {_toml_str(sha)}"]
            if source.subdirectory:
                fields.append(f"subdirectory = {_toml_str(source.subdirectory)}")
            sources.append(f"{p.name} = {{ {', '.join(fields)} }}")
        elif isinstance(source, PypiSource):
            dist = source.package or p.name
            deps.append(f"{dist}{extras}{source.version or '==' + p.version}")
            if source.index:
                index_name = f"hpm-{len(indexes) + 1}"
                indexes.append(f"[[tool.uv.index]]\nname = {_toml_str(index_name)}\n"
                               f"url = {_toml_str(source.index)}\nexplicit = true\n")
                sources.append(f"{dist} = {{ index = {_toml_str(index_name)} }}")
        elif isinstance(source, UrlSource):
            frag = f"#sha256={source.sha256}" if source.sha256 else ""
            deps.append(f"{p.name}{extras} @ {source.url}{frag}")
        else:
            assert isinstance(source, LocalSource)
            path = p.path or source.path
            deps.append(f"{p.name}{extras}")
            editable = ", editable = true" if source.editable and os.path.isdir(path) else ""
            sources.append(f"{p.name} = {{ path = {_toml_str(path)}{editable} }}")
    minor = _python_minor(python)
    lines = [
        "# An hpm ephemeral environment, generated from the plan: do not edit.",
        "# Its directory name is a digest of this file; `hpm gc` removes stale ones.",
        f"# python: {python}",
        f"# uv options: {' '.join(uv_args) or '-'}",
        "",
        "[project]",
        'name = "hpm-ephemeral"',
        'version = "0"',
        f'requires-python = ">={minor}"',
        "dependencies = [",
        *(f"    {_toml_str(d)}," for d in deps),
        "]",
        "",
        "[tool.uv]",
        "package = false",
        "",
        *indexes,
        "[tool.uv.sources]",
        *sources,
    ]
    return "\n".join(lines) + "\n"


def _python_minor(python: str) -> str:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    from hpm_boot.install import describe_interpreter

    return describe_interpreter(python).python_version


def env_id(text: str) -> str:
    import hashlib  # not at the top: loading OpenSSL costs the fast path ~10 ms

    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- directories and locks


def ephemeral_root(environ: Mapping[str, str]) -> str:
    """``HPM_EPHEMERAL_DIR``, else ``./.hpm/ephemeral``, as an absolute path."""
    return os.path.abspath(environ.get(ROOT_ENV) or DEFAULT_ROOT)


def _not_writable(path: str, exc: OSError) -> NotWritableError:
    return NotWritableError(
        f"cannot write the ephemeral environment under {path}: {exc.strerror or exc}",
        f"make it writable, or put ephemeral environments elsewhere with {ROOT_ENV}=DIR "
        f"(for example {ROOT_ENV}=$HOME/.cache/hpm/ephemeral)",
    )


def ensure_project(root: str, text: str) -> str:
    """The directory of the project ``text``, created atomically when missing."""
    target = os.path.join(root, env_id(text))
    if os.path.isfile(os.path.join(target, PROJECT)):
        return target
    try:
        os.makedirs(root, exist_ok=True)
        tmp = os.path.join(root, f".tmp-{env_id(text)}-{os.getpid()}")
        os.makedirs(tmp, exist_ok=True)
        with open(os.path.join(tmp, PROJECT), "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            import shutil  # another process made it first: same content, keep theirs

            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise _not_writable(root, exc) from None
    return target


class _Gone(Exception):
    """The directory was removed (by gc) while we waited for its lock."""


def hold(directory: str) -> int:
    """Take the shared in-use lock of ``directory``; the fd stays open across exec."""
    path = os.path.join(directory, USE_LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise _Gone() from None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # a read-only root can still be used
        except FileNotFoundError:
            raise _Gone() from None
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise _Gone()
    try:
        with open(os.path.join(directory, LAST_USED), "a"):
            pass
        os.utime(os.path.join(directory, LAST_USED))
    except OSError:
        pass  # a read-only root: usable, just not ordered for gc
    return fd


def _sig(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def _kind(path: str) -> str | None:
    if os.path.isdir(path):
        return "dir"
    return "file" if os.path.exists(path) else None


def local_fingerprint(paths: Sequence[str]) -> list[Any]:
    """What makes uv rebuild a local package: its metadata files' signatures."""
    out: list[Any] = []
    for path in paths:
        if os.path.isdir(path):
            out.append([path, [_sig(os.path.join(path, m)) for m in META_FILES]])
        else:
            out.append([path, _sig(path)])
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
    from hpm_boot.boot import write_atomic

    write_atomic(path, marshal.dumps(data))


def is_synced(directory: str, locals_: Sequence[str]) -> bool:
    """The env was synced from this project and its local packages' metadata is unchanged."""
    marker = read_record(os.path.join(directory, SYNCED))
    return (isinstance(marker, dict) and marker.get("locals") == local_fingerprint(locals_)
            and os.path.isfile(os.path.join(directory, ".venv", "pyvenv.cfg")))


def sync(directory: str, uv: str, python: str, uv_args: Sequence[str], locals_: Sequence[str],
         environ: Mapping[str, str], log: Log) -> None:
    """``uv sync`` the project unless the marker says it is done; serialized by a lock."""
    from hpm_boot import install

    try:
        fd = os.open(os.path.join(directory, SYNC_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if is_synced(directory, locals_):
            return
        raise _not_writable(directory, exc) from None
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        if is_synced(directory, locals_):
            return
        fingerprint = local_fingerprint(locals_)  # before the sync: a change during it resyncs
        import time

        started = time.perf_counter()
        log.info(f"syncing ephemeral environment {os.path.basename(directory)}")
        argv = [uv, "sync", "--project", directory, "--python", python, *uv_args]
        install.run_installer(argv, "uv", uv_environ(environ), log)
        try:
            write_record(os.path.join(directory, SYNCED), {"locals": fingerprint, "hpm": __version__})
        except OSError as exc:
            raise _not_writable(directory, exc) from None
        log.info(f"synced {os.path.basename(directory)} ({time.perf_counter() - started:.2f} s)")
    finally:
        os.close(fd)


def uv_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in DROPPED_VARS}


def run_argv(uv: str, directory: str, uv_args: Sequence[str], cmd: Sequence[str]) -> list[str]:
    """``uv run --no-sync``: hpm synced the env (or checked that it is synced) just before.

    No ``--python``: the env exists already, and asking uv for an interpreter costs it
    a query of that interpreter (~20 ms)."""
    return [uv, "run", "--project", directory, "--no-sync", *uv_args, "--", *cmd]


def exec_uv(argv: Sequence[str], fd: int, environ: Mapping[str, str]) -> NoReturn:
    """Become uv, keeping the in-use lock ``fd`` open (inherited) for the run's whole life."""
    from hpm_boot.boot import before_exec

    os.set_inheritable(fd, True)
    before_exec()
    try:
        os.execve(argv[0], list(argv), uv_environ(environ))
    except OSError as exc:
        raise InstallerMissingError(f"cannot run uv at {argv[0]}: {exc.strerror}",
                                    "install uv or set HPM_UV") from None


# ---------------------------------------------------------------- the fast-path record


def _key(command: str, opts: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str]:
    """(record file name, full key): what the command resolves from, except file contents.

    The name is two cheap checksums (hashlib would load OpenSSL); the record stores the
    full key and the fast path compares it, so a collision only costs a slow run."""
    import zlib

    data = {"command": command, "opts": dict(opts), "cwd": os.getcwd(), "hpm": __version__,
            "python": sys.executable, "env": {k: environ.get(k) for k in KEY_VARS}}
    text = repr(data)  # insertion order is fixed: _empty_opts, KEY_VARS
    raw = text.encode()
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}", text


_FLAGS = {"--no-defaults": "no_defaults", "--no-index": "no_index", "--offline": "offline",
          "--ephemeral": None}
_LISTS = {"-r": "registry", "--registry": "registry", "-w": "with", "--with": "with", "-g": "group",
          "--group": "group", "-p": "provide", "--provide": "provide", "--find-links": "find_links"}
_VALUES = {"--mode": "mode", "--index-url": "index_url", "--python": "python", "--entrypoint": "entrypoint"}


def _empty_opts() -> dict[str, Any]:
    return {"registry": [], "with": [], "group": [], "provide": [], "find_links": [], "mode": None,
            "index_url": None, "python": None, "entrypoint": None, "no_defaults": False,
            "no_index": False, "offline": False}


def opts_of(args: argparse.Namespace) -> dict[str, Any]:
    """The fast-path key's view of parsed options (same shape as ``parse_fast``)."""
    opts = _empty_opts()
    for name, attr in (("registry", "registry"), ("with", "with_"), ("group", "group"),
                       ("provide", "provide"), ("find_links", "find_links")):
        opts[name] = list(getattr(args, attr, None) or [])
    for name in ("mode", "index_url", "python", "entrypoint"):
        opts[name] = getattr(args, name, None)
    for name in ("no_defaults", "no_index", "offline"):
        opts[name] = bool(getattr(args, name, False))
    return opts


def parse_fast(tokens: Sequence[str]) -> dict[str, Any] | None:
    """Options before ``--`` of a simple ``run --ephemeral``/``shell``; None for anything else."""
    opts = _empty_opts()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name in _FLAGS and not eq:
            if _FLAGS[name]:
                opts[_FLAGS[name]] = True
            i += 1
            continue
        if name in _LISTS or name in _VALUES:
            if not eq:
                if i + 1 >= len(tokens):
                    return None
                value = tokens[i + 1]
                i += 1
            i += 1
            if name in _LISTS:
                opts[_LISTS[name]].append(value)
            else:
                opts[_VALUES[name]] = value
            continue
        return None  # a positional, an abbreviation, --lock, --help...: the full CLI decides
    if opts["mode"] not in (None, "dev", "prod"):
        return None
    return opts


def _snapshot_registry(dirs: Sequence[str]) -> list[list[Any]]:
    """Signatures of every directory and YAML file the registry scan reads."""
    out: list[list[Any]] = []
    for directory in dirs:
        for root, subdirs, files in os.walk(directory):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            out.append([root, _sig(root)])
            out.extend([os.path.join(root, f), _sig(os.path.join(root, f))]
                       for f in sorted(files) if f.endswith((".yaml", ".yml")))
    return out


def _git_watch(url: str, ref: str) -> list[list[Any]] | None:
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
    return [[os.path.join(gitdir, f), _sig(os.path.join(gitdir, f))] for f in files if f]


def fast_ephemeral(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Exec a reused ephemeral env when nothing changed since the last run; None otherwise."""
    if argv[:1] == ["shell"]:
        command, tokens, cmd = "shell", list(argv[1:]), [environ.get("SHELL") or "/bin/sh"]
    elif argv[:1] == ["run"] and "--" in argv:
        cut = list(argv).index("--")
        command, tokens, cmd = "run", list(argv[1:cut]), list(argv[cut + 1:])
        if "--ephemeral" not in tokens:
            return None
    else:
        return None
    opts = parse_fast(tokens)
    if opts is None:
        return None
    root = ephemeral_root(environ)
    name, key = _key(command, opts, environ)
    record = read_record(os.path.join(root, INDEX, name + ".rec"))
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    try:
        if any(_sig(path) != sig for path, sig in record["watch"]):
            return None
        if any(_kind(path) != kind for path, kind in record["kinds"]):
            return None
        directory, uv = record["dir"], record["uv"]
        if not os.access(uv, os.X_OK) or not is_synced(directory, record["locals"]):
            return None
        fd = hold(directory)
    except (_Gone, KeyError, TypeError, ValueError, OSError):
        return None
    if command == "run" and record.get("entry"):
        cmd = [*record["entry"], *cmd]
    elif command == "run" and not cmd:
        os.close(fd)
        return None
    if record.get("warnings") or environ.get("HPM_LOG", "").strip().lower() == "debug":
        from hpm_boot.log import Log

        log = Log(environ)
        for warning in record.get("warnings", []):
            log.warning(warning)
        log.debug(f"reusing ephemeral environment {os.path.basename(directory)} (nothing changed)")
    try:
        exec_uv(run_argv(uv, directory, record["uv_args"], cmd), fd, environ)
    except HpmError as exc:
        from hpm_boot.log import Log

        return Log(environ).error(exc)


# ---------------------------------------------------------------- the slow path


def prepare(args: argparse.Namespace, env: Mapping[str, str], command: str,
            log: Log) -> tuple[str, int, dict[str, Any]]:
    """Resolve, generate, create, lock and sync: (directory, in-use fd, fast-path record)."""
    from pathlib import Path

    from hpm_boot import cli, registry, resolve
    from hpm_boot.manifest import GitSource, LocalSource
    from hpm_boot.uvbin import find_uv

    if getattr(args, "lock", None):
        raise UsageError("--ephemeral builds its environment from the registry; it does not take --lock",
                         "drop --lock, or run the lock with `hpm run --lock FILE` (no --ephemeral)")
    dirs = [os.path.abspath(d) for d in cli.registry_dirs(args, env)]
    watch = _snapshot_registry(dirs)  # before reading: a change after this misses the fast path
    selection = cli.selection_of(args, env)
    reg = registry.load([Path(d) for d in dirs], selection.mode)
    kinds: list[list[Any]] = []
    remote_git = False
    for entry in reg.entries.values():
        checkout = entry.dev_checkout()
        if checkout is not None:
            kinds.append([str(checkout), _kind(str(checkout))])
        prod = entry.manifest.sources.prod
        if isinstance(prod, GitSource):
            files = _git_watch(prod.url, prod.ref)
            if files is None:
                remote_git = True
            else:
                watch.extend(files)
    plan = resolve.resolve(reg, selection)
    for warning in plan.warnings:
        log.warning(warning)
    options = cli.installer_options(args)
    uv_args = options.uv_args()
    python = os.path.abspath(args.python) if getattr(args, "python", None) else sys.executable
    text = generate(plan, python, uv_args)
    locals_ = sorted({p.path for p in plan.packages if isinstance(p.source, LocalSource) and p.path})
    uv = find_uv(env)
    root = ephemeral_root(env)
    for _attempt in range(5):
        directory = ensure_project(root, text)
        try:
            fd = hold(directory)
            break
        except _Gone:
            continue
    else:
        raise NotWritableError(f"{root}: the ephemeral environment kept disappearing (is `hpm gc` looping?)")
    try:
        sync(directory, uv, python, uv_args, locals_, env, log)
    except BaseException:
        os.close(fd)
        raise
    entry_argv: list[str] | None = None
    if getattr(args, "entrypoint", None):
        from hpm_boot import boot

        packages = [{"name": p.name, "entrypoints": p.entrypoints} for p in plan.packages]
        entry_argv = boot.choose_command({"packages": packages}, args.entrypoint, [])
    record = {"dir": directory, "uv": uv, "python": python, "uv_args": uv_args, "locals": locals_,
              "watch": watch, "kinds": kinds, "entry": entry_argv, "warnings": list(plan.warnings)}
    if not remote_git:
        name, record["key"] = _key(command, opts_of(args), env)
        try:
            os.makedirs(os.path.join(root, INDEX), exist_ok=True)
            write_record(os.path.join(root, INDEX, name + ".rec"), record)
        except OSError:
            pass  # only the next run's speed depends on it
    return directory, fd, record


def run_ephemeral(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``hpm run --ephemeral [--entrypoint NAME] [-- CMD...]``: exec uv run in the plan's env."""
    from hpm_boot.log import Log

    log = Log(env)
    if not args.entrypoint and not args.cmd:
        raise UsageError("nothing to run: give a command after -- or --entrypoint NAME")
    directory, fd, record = prepare(args, env, "run", log)
    cmd = [*(record["entry"] or []), *args.cmd]
    log.info(f"ephemeral environment {os.path.basename(directory)}: exec {' '.join(cmd)} "
             f"({log.elapsed():.2f} s)")
    exec_uv(run_argv(record["uv"], directory, record["uv_args"], cmd), fd, env)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``hpm shell``: the selection options come from cli; add the installer's and --python."""
    from hpm_boot.cli import add_installer_options

    parser.add_argument("--python", metavar="PYTHON",
                        help="the interpreter of the environment (default: the one running hpm)")
    add_installer_options(parser)


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``hpm shell``: ``$SHELL`` (else /bin/sh) inside the plan's ephemeral environment."""
    from hpm_boot.log import Log

    log = Log(env)
    directory, fd, record = prepare(args, env, "shell", log)
    shell = env.get("SHELL") or "/bin/sh"
    log.info(f"ephemeral environment {os.path.basename(directory)}: {shell} (exit to leave)")
    exec_uv(run_argv(record["uv"], directory, record["uv_args"], [shell]), fd, env)

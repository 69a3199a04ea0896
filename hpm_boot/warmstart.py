"""The warm start: read the lock, see that it is installed, exec the target.

What ``hpm run``/``hpm install`` with a lock does before anything else is loaded: a
warm start (the lock already installed) must cost little more than the interpreter's
own start. When something is missing, ``fast_run`` installs it (``install``) and execs;
it returns None to hand anything it does not handle to the CLI.

The warm-start stamp: after a lock has been decoded (digest checked by ``payload``) and
found installed, a small ``marshal`` file in the target environment remembers the exact
lock input (the HPM_LOCK_B64 text or the lock file's bytes) and what the warm start
needs of it (pins, entrypoints already split). The next start with byte-identical input
skips decoding, digest and JSON entirely; the installed distributions are still checked
every time. No stamp is used while a signing key is set (the signature is verified on
every start). The stamp lives where the packages live: whoever can write it can already
write code that the application imports.
"""

from __future__ import annotations

from hpm_boot import contract, fastargs
from hpm_boot.handover import (
    choose_command,
    entrypoints_of,
    hand_over,
    quote_argv,
    requested_entrypoint,
    split_command,
    with_mode,
)
from hpm_boot.target import applicable, missing, same_python, state_path, target_environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from hpm_boot.target import Environment


STAMP_NAME = ".hpm-boot-stamp"
STAMP_VERSION = 2


def lock_input(environ: Mapping[str, str], lock_file: str | None = None) -> str | bytes | None:
    """The raw lock input, byte for byte: ``--lock``/HPM_LOCK_FILE content or HPM_LOCK_B64.
    A file is read up to one byte past ``contract.MAX_LOCK_FILE_BYTES``, which ``payload``
    refuses."""
    path = lock_file or environ.get(contract.LOCK_FILE)
    if path and not lock_file and contract.LOCK_B64 in environ:
        return None  # both set: a usage error the full check reports
    if not path:
        return environ.get(contract.LOCK_B64)
    try:
        with open(path, "rb") as f:
            return f.read(contract.MAX_LOCK_FILE_BYTES + 1)
    except OSError:
        return None  # the full check says why


def read_stamp(target: Environment, raw: str | bytes) -> dict[str, Any] | None:
    """The stamp's summary of the lock when it was made from exactly ``raw``."""
    import marshal

    path = state_path(target, STAMP_NAME)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            stamp = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(stamp, dict) or stamp.get("v") != STAMP_VERSION or stamp.get("input") != raw:
        return None
    return stamp


def write_stamp(target: Environment, raw: str | bytes, lock: Mapping[str, Any]) -> None:
    """Remember ``lock`` (already checked, found installed, its pins free of markers) for
    input ``raw``; best effort."""
    import marshal

    from hpm_boot.fsutil import write_atomic

    path = state_path(target, STAMP_NAME)
    if path is None:
        return
    split = {}
    for _, _, command in entrypoints_of(lock):
        try:
            split[command] = split_command(command)
        except ValueError:
            pass  # reported when it is chosen
    stamp = {
        "v": STAMP_VERSION,
        "input": raw,
        "python_version": str(lock.get("target", {}).get("python_version", "")),
        "mode": str(lock.get("mode", "")),
        "pins": [{k: v for k, v in pin.items() if k in ("name", "version", "url", "editable")}
                 for pin in lock.get("pins", [])],
        "packages": [{"name": p["name"], "manager": p.get("manager", "uv"),
                      "requirement": p.get("requirement", ""), "entrypoints": dict(p.get("entrypoints", {}))}
                     for p in lock.get("packages", [])],
        "split": split,
    }
    try:  # best effort: without it the next start decodes the lock again
        write_atomic(path, marshal.dumps(stamp))
    except (OSError, ValueError):
        pass


def _markers_hold(markers: str) -> bool | None:
    from hpm_boot.markers import evaluate

    return evaluate(markers)


def looks_like_lock(lock: Any) -> bool:
    """Whether the fields the installer and exec read have the right types; a lock that
    fails goes to the full CLI, whose schema check says exactly what is wrong."""
    def strs(d: Any, *keys: str) -> bool:
        return all(isinstance(d.get(k), str) for k in keys)

    def opt(d: Any, key: str, kind: type) -> bool:
        return d.get(key) is None or isinstance(d.get(key), kind)

    return (isinstance(lock, dict) and lock.get("version") == 2 and isinstance(lock.get("targets"), list)
            and all(isinstance(t, dict) and strs(t, "python_version") and opt(t, "python_platform", str)
                    for t in lock["targets"])
            and isinstance(lock.get("pins"), list) and isinstance(lock.get("packages"), list)
            and all(isinstance(p, dict) and strs(p, "name") and opt(p, "version", str) and opt(p, "url", str)
                    and opt(p, "markers", str) and isinstance(p.get("hashes", []), list)
                    and all(isinstance(h, str) for h in p.get("hashes", []))
                    and isinstance(p.get("files", []), list)
                    and all(isinstance(f, dict) and strs(f, "name", "hash") for f in p.get("files", []))
                    and isinstance(p.get("targets", []), list)
                    and all(type(i) is int for i in p.get("targets", [])) for p in lock["pins"])
            and all(isinstance(p, dict) and strs(p, "name", "requirement") and opt(p, "manager", str)
                    and isinstance(p.get("entrypoints", {}), dict)
                    and all(isinstance(c, str) for c in p.get("entrypoints", {}).values())
                    for p in lock["packages"]))


def fast_run(args: Sequence[str], environ: Mapping[str, str], exec_after: bool = True) -> int | None:
    """``hpm run``/``hpm install`` from a lock with the standard library only: decode (or
    the stamp), install what is missing, exec. ``args`` follow the command word. None
    hands over to the full CLI (no lock, other options, a lock whose shape needs the full
    check's words, environment markers ``markers`` cannot decide)."""
    _, tokens, cmd = fastargs.split(["run", *args])
    opts = fastargs.parse(tokens, fastargs.RUN)
    if opts is None or (not exec_after and (cmd or opts["entrypoint"] is not None)):
        return None
    cmd = cmd or []
    lock_file = opts["lock"]
    if not (lock_file or contract.LOCK_B64 in environ or contract.LOCK_FILE in environ):
        return None
    from hpm_boot.log import Log

    log = Log(environ)
    try:
        target = target_environment(environ)
        keyed = any(k in environ for k in contract.KEY_VARS)  # even empty: read_key refuses that
        raw = None if keyed else lock_input(environ, lock_file)  # no stamp while signatures count
        lock = read_stamp(target, raw) if target is not None and raw is not None and not keyed else None
        fresh = lock is None
        if lock is None:
            from hpm_boot import payload

            # a lock file is not read again: its bytes are ``raw``
            loaded = payload.load_lock(environ, lock_file, data=raw if isinstance(raw, bytes) else None)
            if loaded is None or not looks_like_lock(loaded[0]):
                return None
            lock = applicable(loaded[0], _markers_hold)
            if lock is None:  # markers only packaging can decide: the CLI path does
                return None
            import sys

            from hpm_boot.platforms import check_target

            python_version = (target.python_version if target is not None
                              else f"{sys.version_info[0]}.{sys.version_info[1]}")
            lock = check_target(lock, python_version)  # none fits: 78, naming both
            log.info(f"lock from {loaded[1]}: {len(lock['pins'])} pins ({log.elapsed() * 1000:.1f} ms)")
            version = lock["target"]["python_version"]
        else:
            version = lock["python_version"]
        if exec_after:  # an unknown entrypoint is 66 before anything is installed
            entrypoint, origin = requested_entrypoint(opts["entrypoint"], environ)
            argv = choose_command(lock, entrypoint, cmd, None if fresh else lock.get("split"), origin)
        if target is None or not same_python(version, target) or missing(lock, target):
            if not fresh:  # the stamp holds no hashes: install from the lock itself
                return None
            from hpm_boot import install

            options = install.InstallerOptions(
                find_links=opts["find_links"], index_url=opts["index_url"],
                no_index=opts["no_index"], offline=opts["offline"])
            target = install.prepare_environment(environ, None, None, log)
            install.install(lock, target, options, environ, log)
            installed_now = True
        else:
            installed_now = False
            if not exec_after:
                log.info(f"{len(lock['pins'])} packages already installed; nothing to do "
                         f"({log.elapsed():.2f} s)")
        if fresh and raw is not None and not keyed:
            write_stamp(target, raw, lock)
        if not exec_after:
            return 0
        if installed_now:
            log.info(f"exec {quote_argv(argv)} ({log.elapsed():.2f} s)")
        elif log.level >= 2:
            log.info(f"{len(lock['pins'])} packages already installed "
                     f"({log.elapsed() * 1000:.1f} ms); exec {quote_argv(argv)}")
        hand_over(argv, target, with_mode(environ, lock.get("mode")), log)
    except Exception as exc:
        from hpm_boot.errors import HpmError  # imported only when something was raised

        if not isinstance(exc, HpmError):
            raise
        return log.error(exc)

"""The container hot path: read the lock, see that it is installed, exec the target.

Standard library only, and only what this path needs: a warm start (the lock already
installed) must cost little more than the interpreter's own start. When something is
missing, ``fast_run`` returns None and the full CLI takes over (install, then exec).
``Environment``, ``missing``, ``choose_command`` and ``exec_target`` are shared with
``install`` and ``cli``.

The warm-start stamp: after a lock has been decoded (digest checked by ``payload``) and
found installed, a small ``marshal`` file in the target environment remembers the exact
lock input (the HPM_LOCK_B64 text or the lock file's bytes) and what the hot path needs
of it (pins, entrypoints already split). The next start with byte-identical input skips
decoding, digest and JSON entirely; the installed distributions are still checked
every time. No stamp is used while a signing key is set (the signature is verified on
every start). The stamp lives where the packages live: whoever can write it can already
write code that the application imports.
"""

from __future__ import annotations

import os
import sys

from hpm_boot.errors import (
    CommandNotExecutableError,
    CommandNotFoundError,
    DataError,
    HpmError,
    NotFoundError,
    UsageError,
)

TYPE_CHECKING = False  # no ``typing`` import at run time: milliseconds on the hot path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

    from hpm_boot.log import Log

SCRUBBED = ("HPM_LOCK_B64", "HPM_LOCK_KEY", "HPM_LOCK_KEY_FILE")
KEY_VARS = ("HPM_LOCK_KEY", "HPM_LOCK_KEY_FILE")
STAMP_NAME = ".hpm-boot-stamp"
STAMP_VERSION = 1
MAX_LOCK_FILE = 8 * 1024 * 1024


class Environment:
    """Where packages go: an interpreter, its site directories, the bin dir to put on PATH."""

    __slots__ = ("bin_dir", "prefix", "python", "python_version", "site_dirs", "venv")

    def __init__(self, python: str, python_version: str, site_dirs: list[str],
                 venv: str | None = None, bin_dir: str | None = None, prefix: str | None = None) -> None:
        self.python = python
        self.python_version = python_version  # "3.12"
        self.site_dirs = site_dirs
        self.venv = venv
        self.bin_dir = bin_dir
        self.prefix = prefix or venv or sys.prefix

    @classmethod
    def current(cls) -> Environment:
        """The interpreter running hpm."""
        dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        venv = sys.prefix if sys.prefix != sys.base_prefix else None
        return cls(sys.executable, version, dirs, venv=venv, bin_dir=os.path.dirname(sys.executable),
                   prefix=sys.prefix)

    @classmethod
    def of_venv(cls, path: str) -> Environment | None:
        """An existing virtual environment at ``path``, or None when there is none yet."""
        lib = os.path.join(path, "lib")
        python = os.path.join(path, "bin", "python")
        try:
            names = sorted(n for n in os.listdir(lib) if n.startswith("python3."))
        except OSError:
            return None
        if not names or not os.path.exists(python) or not os.path.exists(os.path.join(path, "pyvenv.cfg")):
            return None
        site = os.path.join(lib, names[-1], "site-packages")
        return cls(python, names[-1].removeprefix("python"), [site], venv=path,
                   bin_dir=os.path.join(path, "bin"))


# ---------------------------------------------------------------- what is installed


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed(site_dirs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Normalized name -> (version, dist-info path); the first site directory wins."""
    found: dict[str, tuple[str, str]] = {}
    for directory in site_dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".dist-info"):
                name, _, version = entry[:-10].rpartition("-")
            elif entry.endswith(".egg-info"):  # distutils/setuptools installs, e.g. Debian's apt
                name, _, version = entry[:-9].partition("-")
                version = version.partition("-py")[0]
            else:
                continue
            found.setdefault(_norm(name), (version, directory + os.sep + entry))  # join: 1.5 us each
    return found


def _direct_url(dist_info: str) -> dict[str, Any]:
    from hpm_boot.payload import loads

    try:
        with open(os.path.join(dist_info, "direct_url.json"), encoding="utf-8") as f:
            data = loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _file_path(url: str) -> str:
    """The local path of a ``file:`` URL (or a plain path), percent-escapes decoded."""
    if not url.startswith("file:"):
        return url
    path = url[5:]
    if path.startswith("//"):
        path = path[2:]
        path = path[path.find("/"):] if "/" in path else ""
    if "%" in path:
        from urllib.parse import unquote

        path = unquote(path)
    return path


def _same_path(a: str, b: str) -> bool:
    """Whether two paths or file: URLs name the same place."""
    a, b = _file_path(a), _file_path(b)
    return bool(a) and os.path.realpath(a) == os.path.realpath(b)


def pin_missing(pin: Mapping[str, Any], have: Mapping[str, tuple[str, str]]) -> str | None:
    """Why ``pin`` is not satisfied by the installed distributions, or None when it is."""
    name = pin["name"]
    got = have.get(name)
    if got is None:
        return f"{name} not installed"
    version, dist_info = got
    if pin.get("version") is not None and pin["version"] != version:
        return f"{name} {version} installed, {pin['version']} locked"
    url = pin.get("url")
    if url is None:
        return None
    direct = _direct_url(dist_info)
    if pin.get("editable"):
        ok = direct.get("dir_info", {}).get("editable") and _same_path(direct.get("url", ""), url)
        return None if ok else f"{name} is not installed editable from {url}"
    if url.startswith("git+"):
        commit = url.rpartition("@")[2].partition("#")[0]
        if direct.get("vcs_info", {}).get("commit_id") != commit:
            return f"{name} is not installed at commit {commit[:12]}"
        return None
    if url.startswith("file:"):
        return None if _same_path(direct.get("url", ""), url.partition("#")[0]) else (
            f"{name} is not installed from {url}")
    return None if direct.get("url") == url.partition("#")[0] else f"{name} is not installed from {url}"


def missing(lock: Mapping[str, Any], env: Environment) -> list[str]:
    """What the environment lacks of the lock (empty: nothing to install)."""
    have = installed(env.site_dirs)
    out = []
    for pin in lock.get("pins", []):
        why = pin_missing(pin, have)
        if why is not None and not (pin.get("markers") and not _markers_apply(pin["markers"])):
            out.append(why)
    conda = [p for p in lock.get("packages", []) if p.get("manager") == "conda"]
    if conda:
        out.extend(conda_missing(conda, env.prefix))
    return out


def _markers_apply(markers: str) -> bool:
    # rare: pins carry markers only from universal locks; packaging is vendored in the pyz
    from packaging.markers import InvalidMarker, Marker

    try:
        return Marker(markers).evaluate()
    except InvalidMarker as exc:
        raise DataError(f"the lock has an invalid environment marker {markers!r}", str(exc)) from None


def conda_spec(requirement: str) -> tuple[str, str | None]:
    """``numpy==1.26.4`` / ``numpy=1.26.4`` / ``numpy>=1`` -> (name, exact version or None)."""
    req = requirement.strip()
    cut = min((i for i in (req.find(c) for c in "=<>!~ [") if i >= 0), default=len(req))
    name, spec = req[:cut], req[cut:].strip()
    exact = spec.lstrip("=") if spec.startswith("=") and not any(c in spec for c in "<>!*,|") else None
    return _norm(name), exact or None


def conda_missing(packages: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    """conda packages of the lock that ``prefix/conda-meta`` does not record."""
    try:
        names = os.listdir(os.path.join(prefix, "conda-meta"))
    except OSError:
        names = []
    present: dict[str, set[str]] = {}
    for n in names:
        if n.endswith(".json") and n.count("-") >= 2:
            pkg, version, _build = n[:-5].rsplit("-", 2)
            present.setdefault(_norm(pkg), set()).add(version)
    out = []
    for p in packages:
        name, version = conda_spec(p["requirement"])
        if name not in present:
            out.append(f"{name} (conda) not installed")
        elif version is not None and version not in present[name]:
            out.append(f"{name} (conda) {', '.join(sorted(present[name]))} installed, {version} locked")
    return out


# ---------------------------------------------------------------- what to run


def entrypoints_of(lock: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(package, entrypoint name, command string) of every package in the lock."""
    return [(p["name"], name, command) for p in lock.get("packages", [])
            for name, command in sorted(p.get("entrypoints", {}).items())]


def choose_command(lock: Mapping[str, Any], entrypoint: str | None, cmd: Sequence[str],
                   split: Mapping[str, list[str]] | None = None) -> list[str]:
    """The argv to exec: ``cmd`` as given, or a manifest entrypoint split with shlex
    (``split`` holds commands already split, from the stamp), followed by ``cmd``."""
    if entrypoint is None:
        if not cmd:
            raise UsageError("nothing to run: give a command after -- or --entrypoint NAME")
        return list(cmd)
    pkg, sep, name = entrypoint.rpartition(":")
    every = entrypoints_of(lock)
    found = [(p, command) for p, n, command in every if n == name and (not sep or p == _norm(pkg))]
    if not found:
        known = sorted(f"{p}:{n}" for p, n, _ in every)
        raise NotFoundError(f"no entrypoint {entrypoint!r} in the plan",
                            "entrypoints: " + (", ".join(known) or "none defined"))
    if len(found) > 1:
        choices = ", ".join(f"{p}:{name}" for p, _ in sorted(found))
        raise NotFoundError(f"entrypoint {name!r} is defined by more than one package; "
                            f"choose one of {choices}", f"e.g. --entrypoint {found[0][0]}:{name}")
    command = found[0][1]
    if split is not None and command in split:
        return [*split[command], *cmd]
    return [*split_command(command), *cmd]


def split_command(command: str) -> list[str]:
    """``shlex.split(command)``, without importing ``shlex`` (and ``re``: milliseconds) when
    the command has no quote, backslash, tab or line break: then splitting at spaces is the same."""
    if not any(c in command for c in "'\"\\\t\r\n"):
        return [word for word in command.split(" ") if word]
    import shlex

    return shlex.split(command)


def _quote(argv: Sequence[str]) -> str:
    """argv for a log line, quoted where needed (``shlex.join`` without importing ``re``)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
    return " ".join(a if a and set(a) <= safe else "'" + a.replace("'", "'\"'\"'") + "'" for a in argv)


def before_exec() -> None:
    """What every exec of hpm's needs: SIGPIPE and SIGXFSZ back to their defaults (Python
    ignores them, and the new program would inherit that), Python's buffers flushed."""
    import _signal  # the builtin under ``signal``, which would import ``enum``

    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()


def hand_over(argv: Sequence[str], env: Environment, environ: Mapping[str, str], log: Log) -> NoReturn:
    """The last step of ``hpm run``: touch ``HPM_READY_FILE`` (the Kubernetes startupProbe
    of docs/kubernetes.md waits for it, on warm starts too), then become ``argv``."""
    ready = environ.get("HPM_READY_FILE")
    if ready:
        try:
            open(ready, "a").close()
        except OSError as exc:
            log.warning(f"HPM_READY_FILE={ready}: cannot create it: {exc.strerror}")
    exec_target(argv, env, environ)


def child_environ(env: Environment, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a program run in ``env``: lock and key variables removed, the
    target's bin directory first on PATH, VIRTUAL_ENV set for a venv."""
    child_env = {k: v for k, v in environ.items() if k not in SCRUBBED}
    if env.bin_dir:
        child_env["PATH"] = env.bin_dir + os.pathsep + child_env.get("PATH", os.defpath)
    if env.venv:
        child_env["VIRTUAL_ENV"] = env.venv
    return child_env


def target_program(program: str, env: Environment) -> str:
    """``python``/``python3``/``pythonX.Y`` is the interpreter hpm installed into, whatever
    PATH says; any other program is looked up on PATH."""
    return env.python if program in ("python", "python3", f"python{env.python_version}") else program


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
        try:  # noqa: SIM105 (contextlib costs an import)
            os.unlink(tmp)
        except OSError:
            pass
        raise


def state_path(env: Environment, name: str) -> str | None:
    """Where hpm keeps a file about ``env`` (the stamp, remembered pins): in the venv, or
    beside the packages of an interpreter."""
    base = env.venv or (env.site_dirs[0] if env.site_dirs else None)
    return os.path.join(base, name) if base else None


def exec_target(argv: Sequence[str], env: Environment, environ: Mapping[str, str]) -> NoReturn:
    """Become ``argv`` (``os.execvpe``): no shell, no child; lock and key variables removed.

    ``python``/``python3``/``pythonX.Y`` is the target interpreter, whatever PATH says;
    the target's bin directory goes first on PATH; SIGPIPE and SIGXFSZ are reset to
    their defaults (Python ignores them, and the exec'd program would inherit that).
    """
    child_env = child_environ(env, environ)
    program = target_program(argv[0], env)
    before_exec()
    try:
        os.execvpe(program, list(argv), child_env)
    except FileNotFoundError:
        raise CommandNotFoundError(f"command not found: {argv[0]}",
                                   f"PATH={child_env.get('PATH', '')}") from None
    except OSError as exc:  # PermissionError, ENOEXEC (not a program), ...
        raise CommandNotExecutableError(
            f"cannot execute {argv[0]}: {exc.strerror}",
            "is it a program (or a script with a #! line) with its x bit set?") from None


def target_environment(environ: Mapping[str, str]) -> Environment | None:
    """The environment to check and run in; None when HPM_VENV is set but not made yet."""
    venv = environ.get("HPM_VENV")
    if venv:
        return Environment.of_venv(venv)
    return Environment.current()


# ---------------------------------------------------------------- the warm-start stamp


def lock_input(environ: Mapping[str, str], lock_file: str | None = None) -> str | bytes | None:
    """The raw lock input, byte for byte: ``--lock``/HPM_LOCK_FILE content or HPM_LOCK_B64."""
    path = lock_file or environ.get("HPM_LOCK_FILE")
    if path and not lock_file and "HPM_LOCK_B64" in environ:
        return None  # both set: a usage error the full check reports
    if not path:
        return environ.get("HPM_LOCK_B64")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOCK_FILE + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_LOCK_FILE else None


def read_stamp(env: Environment, raw: str | bytes) -> dict[str, Any] | None:
    """The stamp's summary of the lock when it was made from exactly ``raw``."""
    import marshal

    path = state_path(env, STAMP_NAME)
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


def write_stamp(env: Environment, raw: str | bytes, lock: Mapping[str, Any]) -> None:
    """Remember ``lock`` (already checked, found installed) for input ``raw``; best effort."""
    import marshal

    path = state_path(env, STAMP_NAME)
    if path is None:
        return
    split = {}
    for _, _, command in entrypoints_of(lock):
        try:  # noqa: SIM105 (contextlib costs an import)
            split[command] = split_command(command)
        except ValueError:
            pass  # reported when it is chosen
    stamp = {
        "v": STAMP_VERSION,
        "input": raw,
        "python_version": str(lock.get("target", {}).get("python_version", "")),
        "pins": [{k: v for k, v in pin.items() if k in ("name", "version", "url", "editable", "markers")}
                 for pin in lock.get("pins", [])],
        "packages": [{"name": p["name"], "manager": p.get("manager", "uv"),
                      "requirement": p.get("requirement", ""), "entrypoints": dict(p.get("entrypoints", {}))}
                     for p in lock.get("packages", [])],
        "split": split,
    }
    try:  # noqa: SIM105 (best effort: without it the next start decodes the lock again)
        write_atomic(path, marshal.dumps(stamp))
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------- the hot path


_VALUE_FLAGS = ("--lock", "--entrypoint", "--find-links", "--index-url")
_BOOL_FLAGS = ("--no-index", "--offline")


def parse_run_args(args: Sequence[str]) -> dict[str, Any] | None:
    """``[--lock FILE] [--entrypoint NAME] [installer options] [-- CMD...]`` as a dict;
    None for anything else (the full CLI parses it)."""
    out: dict[str, Any] = {"--find-links": [], "cmd": []}
    rest = list(args)
    while rest and rest[0] != "--":
        flag, eq, value = rest[0].partition("=")
        if flag in _BOOL_FLAGS and not eq:
            out[flag] = True
            rest = rest[1:]
            continue
        if flag not in _VALUE_FLAGS:
            return None
        if not eq:
            if len(rest) < 2:
                return None
            value, rest = rest[1], rest[2:]
        else:
            rest = rest[1:]
        if flag == "--find-links":
            out[flag].append(value)
        else:
            out[flag] = value
    out["cmd"] = rest[1:]
    return out


def same_python(locked: str, env: Environment) -> bool:
    """Whether a lock made for Python ``locked`` ("3.12" or "3.12.1") fits ``env``."""
    return ".".join(locked.split(".")[:2]) == env.python_version


def looks_like_lock(lock: Any) -> bool:
    """Whether the fields the installer and exec read have the right types; a lock that
    fails goes to the full CLI, whose schema check says exactly what is wrong."""
    def strs(d: Any, *keys: str) -> bool:
        return all(isinstance(d.get(k), str) for k in keys)

    def opt(d: Any, key: str, kind: type) -> bool:
        return d.get(key) is None or isinstance(d.get(key), kind)

    return (isinstance(lock, dict) and lock.get("version") == 1
            and isinstance(lock.get("target"), dict) and strs(lock["target"], "python_version")
            and isinstance(lock.get("pins"), list) and isinstance(lock.get("packages"), list)
            and all(isinstance(p, dict) and strs(p, "name") and opt(p, "version", str) and opt(p, "url", str)
                    and opt(p, "markers", str) and isinstance(p.get("hashes", []), list)
                    and all(isinstance(h, str) for h in p.get("hashes", [])) for p in lock["pins"])
            and all(isinstance(p, dict) and strs(p, "name", "requirement") and opt(p, "manager", str)
                    and isinstance(p.get("entrypoints", {}), dict)
                    and all(isinstance(c, str) for c in p.get("entrypoints", {}).values())
                    for p in lock["packages"]))


def fast_run(args: Sequence[str], environ: Mapping[str, str], exec_after: bool = True) -> int | None:
    """``hpm run``/``hpm install`` from a lock with the standard library only: decode (or
    the stamp), install what is missing, exec. None hands over to the full CLI (no lock,
    other options, a lock whose shape needs the full check's words)."""
    parsed = parse_run_args(args)
    if parsed is None or (not exec_after and (parsed["cmd"] or "--entrypoint" in parsed)):
        return None
    lock_file = parsed.get("--lock")
    if not (lock_file or "HPM_LOCK_B64" in environ or "HPM_LOCK_FILE" in environ):
        return None
    from hpm_boot.log import Log

    log = Log(environ)
    try:
        env = target_environment(environ)
        raw = lock_input(environ, lock_file)
        keyed = any(k in environ for k in KEY_VARS)  # even empty: read_key refuses that
        lock = read_stamp(env, raw) if env is not None and raw is not None and not keyed else None
        fresh = lock is None
        if lock is None:
            from hpm_boot import payload

            loaded = payload.load_lock(environ, lock_file)
            if loaded is None or not looks_like_lock(loaded[0]):
                return None
            lock = loaded[0]
            log.info(f"lock from {loaded[1]}: {len(lock['pins'])} pins ({log.elapsed() * 1000:.1f} ms)")
            version = lock["target"]["python_version"]
        else:
            version = lock["python_version"]
        if exec_after:  # an unknown entrypoint is 66 before anything is installed
            argv = choose_command(lock, parsed.get("--entrypoint"), parsed["cmd"],
                                  None if fresh else lock.get("split"))
        if env is None or not same_python(version, env) or missing(lock, env):
            if not fresh:  # the stamp holds no hashes: install from the lock itself
                return None
            from hpm_boot import install

            options = install.InstallerOptions(
                find_links=parsed["--find-links"], index_url=parsed.get("--index-url"),
                no_index=bool(parsed.get("--no-index")), offline=bool(parsed.get("--offline")))
            env = install.prepare_environment(environ, None, None, log)
            install.install(lock, env, options, environ, log)
            installed_now = True
        else:
            installed_now = False
            if not exec_after:
                log.info(f"{len(lock['pins'])} packages already installed; nothing to do "
                         f"({log.elapsed():.2f} s)")
        if fresh and raw is not None and not keyed:
            write_stamp(env, raw, lock)
        if not exec_after:
            return 0
        if installed_now:
            log.info(f"exec {_quote(argv)} ({log.elapsed():.2f} s)")
        elif log.level >= 2:
            log.info(f"{len(lock['pins'])} packages already installed "
                     f"({log.elapsed() * 1000:.1f} ms); exec {_quote(argv)}")
        hand_over(argv, env, environ, log)
    except HpmError as exc:
        return log.error(exc)

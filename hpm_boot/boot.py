"""The container hot path: read the lock, see that it is installed, exec the target.

Standard library only, and only what this path needs: a warm start (the lock already
installed) must cost little more than the interpreter's own start. When something is
missing, ``fast_run`` returns None and the full CLI takes over (install, then exec).
``Environment``, ``missing`` and ``exec_target`` are shared with ``install`` and ``cli``.
"""

from __future__ import annotations

import json
import os
import sys

from hpm_boot.errors import CommandNotFoundError, HpmError, NotFoundError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

SCRUBBED = ("HPM_LOCK_B64", "HPM_LOCK_KEY", "HPM_LOCK_KEY_FILE")


class Environment:
    """Where packages go: an interpreter, its site directories, the bin dir to put on PATH."""

    __slots__ = ("bin_dir", "python", "python_version", "site_dirs", "venv")

    def __init__(self, python: str, python_version: str, site_dirs: list[str],
                 venv: str | None = None, bin_dir: str | None = None) -> None:
        self.python = python
        self.python_version = python_version  # "3.12"
        self.site_dirs = site_dirs
        self.venv = venv
        self.bin_dir = bin_dir

    @classmethod
    def current(cls) -> Environment:
        """The interpreter running hpm."""
        dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return cls(sys.executable, version, dirs, bin_dir=os.path.dirname(sys.executable))

    @classmethod
    def of_venv(cls, path: str) -> Environment | None:
        """An existing virtual environment at ``path``, or None when there is none yet."""
        lib = os.path.join(path, "lib")
        python = os.path.join(path, "bin", "python")
        try:
            names = sorted(n for n in os.listdir(lib) if n.startswith("python3."))
        except OSError:
            return None
        if not names or not os.path.exists(python):
            return None
        site = os.path.join(lib, names[-1], "site-packages")
        return cls(python, names[-1].removeprefix("python"), [site], venv=path,
                   bin_dir=os.path.join(path, "bin"))


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
                found.setdefault(_norm(name), (version, os.path.join(directory, entry)))
    return found


def _direct_url(dist_info: str) -> dict[str, Any]:
    try:
        with open(os.path.join(dist_info, "direct_url.json"), "rb") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _same_path(a: str, b: str) -> bool:
    """Whether two paths or file: URLs name the same place."""
    from urllib.parse import unquote, urlsplit

    a, b = (unquote(urlsplit(x).path) if x.startswith("file:") else x for x in (a, b))
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
        out.extend(_conda_missing(conda, env))
    return out


def _markers_apply(markers: str) -> bool:
    from packaging.markers import Marker  # rare: pins carry markers only from universal locks

    return Marker(markers).evaluate()


def _conda_missing(packages: list[Mapping[str, Any]], env: Environment) -> list[str]:
    prefix = env.venv or sys.prefix
    try:
        names = os.listdir(os.path.join(prefix, "conda-meta"))
    except OSError:
        names = []
    present = {n.rsplit("-", 2)[0].lower() for n in names if n.endswith(".json")}
    return [f"{p['name']} (conda) not installed" for p in packages
            if _norm(p["requirement"].split("=")[0].split("<")[0].split(">")[0].strip()) not in present]


def choose_command(lock: Mapping[str, Any], entrypoint: str | None, cmd: Sequence[str]) -> list[str]:
    """The argv to exec: ``cmd`` as given, or a manifest entrypoint split with shlex."""
    if entrypoint is None:
        if not cmd:
            raise UsageError("nothing to run: give a command after -- or --entrypoint NAME")
        return list(cmd)
    import shlex

    pkg, sep, name = entrypoint.rpartition(":")
    found = [(p["name"], p["entrypoints"][name]) for p in lock.get("packages", [])
             if name in p.get("entrypoints", {}) and (not sep or p["name"] == _norm(pkg))]
    if not found:
        known = sorted(f"{p['name']}:{e}" for p in lock.get("packages", []) for e in p.get("entrypoints", {}))
        raise NotFoundError(f"no entrypoint {entrypoint!r} in the plan",
                            "entrypoints: " + (", ".join(known) or "none defined"))
    if len(found) > 1:
        choices = ", ".join(f"{p}:{name}" for p, _ in sorted(found))
        raise NotFoundError(f"entrypoint {name!r} is defined by more than one package; "
                            f"choose one of {choices}")
    return shlex.split(found[0][1]) + list(cmd)


def exec_target(argv: Sequence[str], env: Environment, environ: Mapping[str, str]) -> NoReturn:
    """Become ``argv``: no shell, no child; lock and key variables removed."""
    import signal

    child_env = {k: v for k, v in environ.items() if k not in SCRUBBED}
    if env.bin_dir:
        child_env["PATH"] = env.bin_dir + os.pathsep + child_env.get("PATH", os.defpath)
    if env.venv:
        child_env["VIRTUAL_ENV"] = env.venv
    program = argv[0]
    if program in ("python", "python3", f"python{env.python_version}"):
        program = env.python  # the interpreter hpm installed into, whatever PATH says
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(program, [argv[0], *argv[1:]], child_env)
    except FileNotFoundError:
        raise CommandNotFoundError(f"command not found: {argv[0]}",
                                   f"PATH={child_env.get('PATH', '')}") from None
    except PermissionError:
        raise CommandNotFoundError(f"command is not executable: {argv[0]}") from None
    except OSError as exc:
        raise CommandNotFoundError(f"cannot run {argv[0]}: {exc.strerror}") from None


def target_environment(environ: Mapping[str, str]) -> Environment | None:
    """The environment to check and run in; None when HPM_VENV is set but not made yet."""
    venv = environ.get("HPM_VENV")
    if venv:
        return Environment.of_venv(venv)
    return Environment.current()


def parse_run_args(args: Sequence[str]) -> tuple[str | None, list[str]] | None:
    """``[--entrypoint NAME] [-- CMD...]``; None for anything else (the full CLI parses it)."""
    entrypoint = None
    rest = list(args)
    if rest[:1] == ["--entrypoint"] and len(rest) >= 2:
        entrypoint, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--entrypoint="):
        entrypoint, rest = rest[0].partition("=")[2], rest[1:]
    if rest and rest[0] != "--":
        return None
    return entrypoint, rest[1:]


def fast_run(args: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """``hpm run`` from a lock that is already installed; None hands over to the full CLI."""
    parsed = parse_run_args(args)
    if parsed is None or not ("HPM_LOCK_B64" in environ or "HPM_LOCK_FILE" in environ):
        return None
    from hpm_boot import payload
    from hpm_boot.log import Log

    log = Log(environ)
    try:
        loaded = payload.load_from_env(environ)
        if loaded is None:
            return None
        lock, source = loaded
        env = target_environment(environ)
        target = lock.get("target", {}).get("python_version") if isinstance(lock.get("target"), dict) else None
        if env is None or target != env.python_version or lock.get("version") != 1:
            return None
        lacking = missing(lock, env)
        if lacking:
            return None
        argv = choose_command(lock, parsed[0], parsed[1])
        log.info(f"{source}: {len(lock.get('pins', []))} packages already installed "
                 f"({log.elapsed() * 1000:.1f} ms); exec {' '.join(argv)}")
        exec_target(argv, env, environ)
    except HpmError as exc:
        return log.error(exc)
    except (KeyError, TypeError, AttributeError):
        return None  # an odd lock shape: the full CLI checks it and says what is wrong

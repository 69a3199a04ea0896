"""The target environment (where a lock's packages go) and what is installed in it.

``Environment`` is an interpreter with its site directories; ``missing`` says what of a
lock it lacks, from the ``.dist-info``/``.egg-info`` directories and ``direct_url.json``
(and ``conda-meta`` for conda packages) alone: no ``importlib.metadata``, no packaging.
"""

from __future__ import annotations

import os
import sys

from hpm_boot import contract

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any


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


def target_environment(environ: Mapping[str, str]) -> Environment | None:
    """The environment to check and run in; None when HPM_VENV is set but not made yet."""
    venv = environ.get(contract.VENV)
    if venv:
        return Environment.of_venv(venv)
    return Environment.current()


def same_python(locked: str, target: Environment) -> bool:
    """Whether a lock made for Python ``locked`` ("3.12" or "3.12.1") fits ``target``."""
    return ".".join(locked.split(".")[:2]) == target.python_version


def state_path(target: Environment, name: str) -> str | None:
    """Where hpm keeps a file about ``target`` (the stamp, remembered pins): in the venv,
    or beside the packages of an interpreter."""
    base = target.venv or (target.site_dirs[0] if target.site_dirs else None)
    return os.path.join(base, name) if base else None


# ---------------------------------------------------------------- what is installed


def canonical_name(name: str) -> str:
    """PEP 503's normalized name (``re.sub(r"[-_.]+", "-", name).lower()``), without ``re``."""
    out = name.lower().replace("_", "-").replace(".", "-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


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
            # plain concatenation: os.path.join costs ~1.5 us an entry, on every warm start
            found.setdefault(canonical_name(name), (version, directory + os.sep + entry))
    return found


def _direct_url(dist_info: str) -> dict[str, Any]:
    from hpm_boot.payload import loads

    try:
        with open(os.path.join(dist_info, "direct_url.json"), encoding="utf-8") as f:
            data = loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_path(url: str) -> str:
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


def same_path(a: str, b: str) -> bool:
    """Whether two paths or file: URLs name the same place."""
    a, b = file_path(a), file_path(b)
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
        ok = direct.get("dir_info", {}).get("editable") and same_path(direct.get("url", ""), url)
        return None if ok else f"{name} is not installed editable from {url}"
    if url.startswith("git+"):
        commit = url.rpartition("@")[2].partition("#")[0]
        if direct.get("vcs_info", {}).get("commit_id") != commit:
            return f"{name} is not installed at commit {commit[:12]}"
        return None
    if url.startswith("file:"):
        return None if same_path(direct.get("url", ""), url.partition("#")[0]) else (
            f"{name} is not installed from {url}")
    return None if direct.get("url") == url.partition("#")[0] else f"{name} is not installed from {url}"


def applicable(lock: Mapping[str, Any], evaluate: Callable[[str], bool | None]) -> dict[str, Any] | None:
    """``lock`` with only the pins whose environment markers hold, and those without
    their markers: what ``missing`` checks and the installers install. ``evaluate`` says
    whether markers hold (``markers.evaluate`` on the start path, packaging on the CLI
    path); None from it, and so from here, means it cannot decide."""
    if not any(pin.get("markers") for pin in lock.get("pins", [])):
        return dict(lock)
    pins = []
    for pin in lock.get("pins", []):
        markers = pin.get("markers")
        if markers:
            holds = evaluate(markers)
            if holds is None:
                return None
            if not holds:
                continue
            pin = {k: v for k, v in pin.items() if k != "markers"}
        pins.append(pin)
    return {**lock, "pins": pins}


def missing(lock: Mapping[str, Any], target: Environment) -> list[str]:
    """What ``target`` lacks of ``lock`` (empty: nothing to install), a lock whose pins
    carry no markers (see ``applicable``)."""
    have = installed(target.site_dirs)
    out = [why for why in (pin_missing(pin, have) for pin in lock.get("pins", [])) if why is not None]
    conda = [p for p in lock.get("packages", []) if p.get("manager") == "conda"]
    if conda:
        out.extend(conda_missing(conda, target.prefix))
    return out


def conda_spec(requirement: str) -> tuple[str, str | None]:
    """``numpy==1.26.4`` / ``numpy=1.26.4`` / ``numpy>=1`` -> (name, exact version or None)."""
    req = requirement.strip()
    cut = min((i for i in (req.find(c) for c in "=<>!~ [") if i >= 0), default=len(req))
    name, spec = req[:cut], req[cut:].strip()
    exact = spec.lstrip("=") if spec.startswith("=") and not any(c in spec for c in "<>!*,|") else None
    return canonical_name(name), exact or None


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
            present.setdefault(canonical_name(pkg), set()).add(version)
    out = []
    for p in packages:
        name, version = conda_spec(p["requirement"])
        if name not in present:
            out.append(f"{name} (conda) not installed")
        elif version is not None and version not in present[name]:
            out.append(f"{name} (conda) {', '.join(sorted(present[name]))} installed, {version} locked")
    return out


# ---------------------------------------------------------------- lock targets (platforms)

#: uv's --python-platform names that stand for a manylinux level (uv's documentation:
#: the unknown-linux-gnu spellings and ``linux`` assume manylinux_2_28, ``-musl`` musllinux_1_2)
_PLATFORM_ALIASES = {
    "linux": "x86_64-manylinux_2_28", "x86_64-unknown-linux-gnu": "x86_64-manylinux_2_28",
    "aarch64-unknown-linux-gnu": "aarch64-manylinux_2_28", "x86_64-manylinux2014": "x86_64-manylinux_2_17",
    "aarch64-manylinux2014": "aarch64-manylinux_2_17", "x86_64-unknown-linux-musl": "x86_64-musllinux_1_2",
    "aarch64-unknown-linux-musl": "aarch64-musllinux_1_2", "macos": "aarch64-apple-darwin",
    "windows": "x86_64-pc-windows-msvc",
}
_OTHER_PLATFORMS = {
    "aarch64-apple-darwin": ("macos", "arm64", "", ""), "x86_64-apple-darwin": ("macos", "x86_64", "", ""),
    "x86_64-pc-windows-msvc": ("windows", "amd64", "", ""),
    "aarch64-pc-windows-msvc": ("windows", "arm64", "", ""),
    "i686-pc-windows-msvc": ("windows", "win32", "", ""),
}
_GLIBC_LEVELS = ("17", "28", "31", "32", "33", "34", "35", "36", "37", "38", "39", "40")


def parse_platform(name: str) -> tuple[str, str, str, str] | None:
    """uv's ``--python-platform`` name -> (os, machine, libc, libc level), e.g.
    ``x86_64-manylinux_2_28`` -> ("linux", "x86_64", "glibc", "2.28"); None for a name this
    hpm does not know (uv knows a few more: Android, iOS, Pyodide, riscv64)."""
    name = _PLATFORM_ALIASES.get(name, name)
    if name in _OTHER_PLATFORMS:
        return _OTHER_PLATFORMS[name]
    machine, _, rest = name.partition("-")
    if machine not in ("x86_64", "aarch64"):
        return None
    if rest.startswith("manylinux_2_") and rest[12:] in _GLIBC_LEVELS:
        return "linux", machine, "glibc", "2." + rest[12:]
    if rest == "musllinux_1_2":
        return "linux", machine, "musl", "1.2"
    return None


def known_platforms() -> list[str]:
    """Every ``--python-platform`` name ``parse_platform`` knows."""
    linux = [f"{m}-manylinux_2_{n}" for m in ("x86_64", "aarch64") for n in _GLIBC_LEVELS]
    return sorted({*_PLATFORM_ALIASES, *_OTHER_PLATFORMS, *linux})


def host_platform() -> tuple[str, str, str, str]:
    """This machine as (os, machine, libc, libc version), e.g. ("linux", "x86_64", "glibc",
    "2.36") or ("linux", "aarch64", "musl", "1.2"): from ``os.uname`` and ``os.confstr``,
    no subprocess. musl does not say its version without running it: assumed 1.2 (every
    musl since 2020, Alpine 3.13 on)."""
    machine = os.uname().machine.lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform == "darwin":
        return "macos", "arm64" if machine == "aarch64" else machine, "", ""
    if sys.platform != "linux":
        return sys.platform, machine, "", ""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    if libc.startswith("glibc "):
        return "linux", machine, "glibc", libc[6:]
    return "linux", machine, "musl" if _has_musl(machine) else "", "1.2"


def _has_musl(machine: str) -> bool:
    return os.path.exists(f"/lib/ld-musl-{machine}.so.1")


def describe_host(python_version: str, host: tuple[str, str, str, str]) -> str:
    os_name, machine, libc, level = host
    return f"Python {python_version}, {os_name} {machine}" + (f", {libc} {level}" if libc else "")


def _level(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return (0,)


def target_fits(target: Mapping[str, Any], python_version: str, host: tuple[str, str, str, str]) -> bool:
    """Whether an interpreter with ``python_version`` on ``host`` can install the files
    locked for ``target`` (a lock's target: python_version, python_platform)."""
    if ".".join(str(target.get("python_version", "")).split(".")[:2]) != python_version:
        return False
    platform = target.get("python_platform")
    if not platform:
        return True
    want = parse_platform(platform)
    if want is None:
        return False
    os_name, machine, libc, level = want
    if os_name != host[0] or machine != host[1] or libc != host[2]:
        return False
    return not libc or _level(host[3]) >= _level(level)


def choose_target(lock: Mapping[str, Any], python_version: str,
                  host: tuple[str, str, str, str] | None = None) -> int | None:
    """The index of the first of the lock's targets that fits, None when none does."""
    host = host or host_platform()
    for i, target in enumerate(lock.get("targets", [])):
        if isinstance(target, dict) and target_fits(target, python_version, host):
            return i
    return None


def for_target(lock: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``lock`` with only the pins that apply to its target ``index`` (a pin without
    ``targets`` applies to all), and ``target`` set to that target."""
    targets = lock.get("targets", [])
    pins = [p for p in lock.get("pins", []) if index in p.get("targets", (index,))]
    return {**lock, "pins": pins, "target": targets[index] if index < len(targets) else {}}

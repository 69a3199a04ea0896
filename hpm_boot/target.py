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
        """An existing virtual environment at ``path``, or None when there is none yet.

        Its paths are absolute (``HPM_VENV=.venv`` too): programs hpm runs from another
        working directory (``hpm smoke``'s checks run from ``/``) and the exec'd app's
        ``PATH`` and ``VIRTUAL_ENV`` must not depend on where hpm was started."""
        path = os.path.abspath(path)
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
    # uv records a URL's "#sha256=" fragment in direct_url.json, pip does not: compare without it
    recorded = str(direct.get("url", "")).partition("#")[0]
    if url.startswith("file:"):
        return None if same_path(recorded, url.partition("#")[0]) else f"{name} is not installed from {url}"
    return None if recorded == url.partition("#")[0] else f"{name} is not installed from {url}"


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


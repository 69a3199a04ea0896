"""A tiny PEP 517 / PEP 660 build backend for hermetic tests (standard library only).

A test package uses it by carrying a copy of this file at its root and declaring::

    [build-system]
    requires = []
    build-backend = "hpm_test_backend"
    backend-path = ["."]

Metadata comes from ``[project]`` in ``pyproject.toml``: ``name``, ``version``,
``description``, ``requires-python``, ``dependencies``, ``optional-dependencies`` and
``scripts`` (console scripts). The wheel holds every top-level package (a directory with
``__init__.py``) and module (``*.py``) of the source tree, except this file. Wheels and
sdists are byte-for-byte reproducible: sorted entries, fixed timestamps.

``build_editable`` (PEP 660) makes a wheel whose only code is a ``.pth`` file naming the
source directory, so edits to the source are visible without reinstalling.

Besides the hooks, :func:`write_wheel` builds a wheel straight from a metadata dict and a
file map, which the test factory uses to make many wheels quickly.
"""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
    "read_project",
    "write_wheel",
]

BACKEND_FILE = "hpm_test_backend.py"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", "build", "dist", "tests", "test"}


# --------------------------------------------------------------------------- metadata


def _parse_toml(text: str) -> dict[str, Any]:
    """Parse pyproject.toml: tomllib when available, else a minimal fallback (3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: no tomllib
        return _parse_toml_minimal(text)
    return tomllib.loads(text)


def _parse_toml_minimal(text: str) -> dict[str, Any]:
    """Tables, ``key = value`` with strings, booleans, numbers and (multi-line) arrays.

    Enough for the pyproject files the test factory writes; not a TOML parser.
    """
    data: dict[str, Any] = {}
    table = data
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending and line.startswith("[") and not line.startswith("[["):
            table = data
            for part in line.strip("[]").split("."):
                table = table.setdefault(part.strip().strip('"'), {})
            continue
        pending = f"{pending} {line}" if pending else line
        key, _, value = pending.partition("=")
        value = value.strip()
        if value.count("[") > value.count("]"):
            continue  # array continues on the next line
        pending = ""
        value = {"true": "True", "false": "False"}.get(value, value)
        table[key.strip().strip('"')] = ast.literal_eval(value)
    return data


def read_project(source_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``[project]`` table of ``source_dir/pyproject.toml``."""
    text = Path(source_dir, "pyproject.toml").read_text(encoding="utf-8")
    project = _parse_toml(text).get("project", {})
    if not project.get("name") or not project.get("version"):
        raise ValueError("pyproject.toml: [project] needs a name and a static version")
    return project


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info(project: dict[str, Any]) -> str:
    return f"{_dist_name(project['name'])}-{project['version']}.dist-info"


def _metadata(project: dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra, deps in sorted(project.get("optional-dependencies", {}).items()):
        lines.append(f"Provides-Extra: {extra}")
        marker = f'extra == "{extra}"'
        for dep in deps:
            req, sep, cond = dep.partition(";")
            joined = f"{req.strip()}; ({cond.strip()}) and {marker}" if sep else f"{dep}; {marker}"
            lines.append(f"Requires-Dist: {joined}")
    return "\n".join(lines) + "\n\n"


def _dist_info_files(project: dict[str, Any]) -> dict[str, bytes]:
    info = _dist_info(project)
    files = {
        f"{info}/METADATA": _metadata(project).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hpm_test_backend\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n\n"
        ),
    }
    scripts = project.get("scripts", {})
    if scripts:
        body = "".join(f"{k} = {v}\n" for k, v in sorted(scripts.items()))
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{body}\n".encode()
    return files


# --------------------------------------------------------------------------- archives


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def write_wheel(
    project: dict[str, Any], files: dict[str, bytes | str], wheel_directory: str | os.PathLike[str]
) -> str:
    """Write a reproducible ``py3-none-any`` wheel; return its file name.

    ``project`` is a ``[project]``-like dict, ``files`` maps archive paths to contents.
    """
    info = _dist_info(project)
    entries = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    entries.update(_dist_info_files(project))
    record_name = f"{info}/RECORD"
    record = [f"{n},{_record_hash(d)},{len(d)}" for n, d in sorted(entries.items())]
    record.append(f"{record_name},,")
    entries[record_name] = ("\n".join(record) + "\n").encode()

    wheel_name = f"{_dist_name(project['name'])}-{project['version']}-py3-none-any.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    target = Path(wheel_directory, wheel_name)
    tmp = target.with_suffix(".whl.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        # dist-info last, RECORD very last, as the wheel spec recommends
        for name in sorted(entries, key=lambda n: (n.startswith(info), n == record_name, n)):
            zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, entries[name])
    os.replace(tmp, target)
    return wheel_name


def _walk(source: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        out += [Path(root, n) for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return out


def _code_files(source: Path) -> dict[str, bytes]:
    """Top-level packages and modules of a flat-layout source tree."""
    files: dict[str, bytes] = {}
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            for path in _walk(entry):
                files[path.relative_to(source).as_posix()] = path.read_bytes()
        elif entry.suffix == ".py" and entry.name not in (BACKEND_FILE, "setup.py", "conftest.py"):
            files[entry.name] = entry.read_bytes()
    return files


def _build(source_dir: str | os.PathLike[str], wheel_directory: str, editable: bool) -> str:
    source = Path(source_dir).resolve()
    project = read_project(source)
    if editable:
        pth = f"__editable__.{_dist_name(project['name'])}-{project['version']}.pth"
        files: dict[str, bytes | str] = {pth: f"{source}\n"}
    else:
        files = dict(_code_files(source))
    return write_wheel(project, files, wheel_directory)


def _prepare_metadata(metadata_directory: str) -> str:
    project = read_project(os.getcwd())
    for name, data in _dist_info_files(project).items():
        path = Path(metadata_directory, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return _dist_info(project)


# --------------------------------------------------------------------------- PEP 517 hooks


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: dict | None = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: dict | None = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: dict | None = None
) -> str:
    return _prepare_metadata(metadata_directory)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: dict | None = None
) -> str:
    return _prepare_metadata(metadata_directory)


def build_wheel(
    wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None
) -> str:
    return _build(os.getcwd(), wheel_directory, editable=False)


def build_editable(
    wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None
) -> str:
    return _build(os.getcwd(), wheel_directory, editable=True)


def build_sdist(sdist_directory: str, config_settings: dict | None = None) -> str:
    """A reproducible ``.tar.gz`` of the source tree plus ``PKG-INFO``."""
    source = Path.cwd()
    project = read_project(source)
    base = f"{_dist_name(project['name'])}-{project['version']}"
    members = {p.relative_to(source).as_posix(): p.read_bytes() for p in _walk(source)}
    members["PKG-INFO"] = _metadata(project).encode()
    os.makedirs(sdist_directory, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            ti = tarfile.TarInfo(f"{base}/{name}")
            ti.size, ti.mode, ti.mtime = len(members[name]), 0o644, 0
            tar.addfile(ti, io.BytesIO(members[name]))
    target = Path(sdist_directory, f"{base}.tar.gz")
    with open(target, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue())
    return f"{base}.tar.gz"

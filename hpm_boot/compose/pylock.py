"""A lock as a PEP 751 ``pylock.toml``: the same closure and the same targets' files.

Made from uv's own pylock.toml of each target (``lock.make_lock(..., pylocks=...)``):
its entries give each file's URL and size, and its direct references (``vcs``,
``directory``, ``archive``). Of the wheels, only those the hpm lock carries are kept; a
pin that applies to some targets only gets a ``marker`` naming them (PEP 508 can say
the machine and the OS, not glibc from musl). hpm's own parts (plan digest, packages,
entrypoints, mode, targets) go under ``[tool.hpm]``. URLs lose their credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from hpm_boot.compose.lock import Lock, Pin, Target, dist_name
from hpm_boot.log import strip_credentials
from hpm_boot.platforms import parse_platform

_MACHINE = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "arm64", "amd64": "AMD64", "win32": "x86"}
_SYSTEM = {"linux": "linux", "macos": "darwin", "windows": "win32"}


def target_marker(target: Target) -> str:
    """A PEP 508 marker true on ``target``'s machines (the platform part; the Python
    version is the file's ``requires-python``)."""
    parsed = parse_platform(target.python_platform or "")
    if parsed is None:
        return f"python_version == '{target.python_version}'"
    os_name, machine, _libc, _level = parsed
    machines = {"macos": {"arm64": "arm64", "x86_64": "x86_64"}}.get(os_name, _MACHINE)
    return (f"python_version == '{target.python_version}' and sys_platform == '{_SYSTEM[os_name]}' "
            f"and platform_machine == '{machines.get(machine, machine)}'")


def _str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _str(key)


def _clean(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    if isinstance(out.get("url"), str):
        out["url"] = strip_credentials(out["url"])
    return out


def _entries(pin: Pin, pylocks: Sequence[Mapping[str, Any]],
             indexes: Sequence[int]) -> list[Mapping[str, Any]]:
    found = []
    for i in indexes:
        for package in pylocks[i].get("packages", []) if i < len(pylocks) else []:
            if dist_name(package.get("name", "")) != pin.name:
                continue
            if pin.version is not None and str(package.get("version")) != pin.version:
                continue
            found.append(package)
    return found


def to_pylock(lock: Lock, pylocks: Sequence[Mapping[str, Any]]) -> str:
    """``pylock.toml`` text of ``lock``; ``pylocks`` are uv's, one per target, in order."""
    everywhere = list(range(len(lock.targets)))
    versions = sorted({t.python_version for t in lock.targets})
    lines = ['lock-version = "1.0"', f"created-by = {_str('hpm')}",
             f"requires-python = {_str('>=' + versions[0])}"]
    if len(lock.targets) > 1:
        lines.append(f"environments = {_value([target_marker(t) for t in lock.targets])}")
    for pin in lock.pins:
        indexes = pin.targets or everywhere
        entries = _entries(pin, pylocks, indexes)
        lines += ["", "[[packages]]", f"name = {_str(pin.name)}"]
        version = pin.version or next((str(e["version"]) for e in entries if e.get("version")), None)
        if version:
            lines.append(f"version = {_str(version)}")
        markers = [" or ".join(f"({target_marker(lock.targets[i])})" for i in indexes)] if pin.targets else []
        markers += [pin.markers] if pin.markers else []
        if markers:
            marker = " and ".join(f"({m})" for m in markers) if len(markers) > 1 else markers[0]
            lines.append(f"marker = {_str(marker)}")
        index = next((e["index"] for e in entries if isinstance(e.get("index"), str)), None)
        if index:
            lines.append(f"index = {_str(strip_credentials(index))}")
        for kind in ("vcs", "directory", "archive"):
            entry = next((e[kind] for e in entries if isinstance(e.get(kind), Mapping)), None)
            if entry is not None:
                lines.append(f"{kind} = {_value(_clean(entry))}")
        names = {f.name for f in pin.files}
        seen: dict[str, Mapping[str, Any]] = {}
        sdist = None
        for e in entries:
            for wheel in e.get("wheels", []):
                name = str(wheel.get("name") or wheel.get("url", "").rpartition("/")[2].partition("#")[0])
                if name in names and name not in seen:
                    seen[name] = {"name": name, **_clean(wheel)}
            s = e.get("sdist")
            if isinstance(s, Mapping):
                name = str(s.get("name") or s.get("url", "").rpartition("/")[2].partition("#")[0])
                if name in names:
                    sdist = {"name": name, **_clean(s)}
        if sdist is not None:
            lines.append(f"sdist = {_value(sdist)}")
        if seen:
            order = [f.name for f in pin.files if f.name in seen]
            lines.append("wheels = [\n" + "".join(f"    {_value(seen[n])},\n" for n in order) + "]")
    tool = {k: v for k, v in msgspec.to_builtins(lock).items() if k not in ("pins",)}
    lines += ["", "[tool.hpm]", f"lock = {_str(json.dumps(tool, sort_keys=True, separators=(',', ':')))}"]
    return "\n".join(lines) + "\n"

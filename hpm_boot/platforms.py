"""A lock's targets (Python version + platform) and this machine's: which target fits.

uv's ``--python-platform`` names, parsed to (os, machine, libc, libc level); this
machine's from ``os.uname`` and ``os.confstr``; ``check_target``, the one decision whether
a lock can be installed here, keeps the pins of the first of its targets this interpreter
fits (``for_target``), or refuses the lock (exit 78). Standard library only (start path),
imported only when a lock is decoded, not by a warm start from the stamp.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


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


def check_target(lock: Mapping[str, Any], python_version: str) -> dict[str, Any]:
    """``lock`` for the first of its targets that an interpreter with ``python_version`` on
    this machine fits (``for_target``); none fits: ResolutionError (exit 78) before anything
    is installed, naming the lock's targets and this environment (Python version, platform,
    glibc/musl)."""
    host = host_platform()
    targets = lock.get("targets", [])
    for i, target in enumerate(targets):
        if isinstance(target, dict) and target_fits(target, python_version, host):
            return for_target(lock, i)
    from hpm_boot.errors import ResolutionError

    named = "; ".join(describe_target(t) for t in targets if isinstance(t, dict)) or "(none)"
    here = describe_host(python_version, host)
    hint = ("make the lock for this environment: hpm lock --python-version "
            f"{python_version} --python-platform {host_platform_name(host)}")
    raise ResolutionError(f"the lock's targets ({named}) do not include this environment ({here})", hint)


def describe_target(target: Mapping[str, Any]) -> str:
    return f"Python {target.get('python_version')} {target.get('python_platform') or '(any platform)'}"


def for_target(lock: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``lock`` with only the pins that apply to its target ``index`` (a pin without
    ``targets`` applies to all), and ``target`` set to that target."""
    targets = lock.get("targets", [])
    pins = [p for p in lock.get("pins", []) if index in p.get("targets", (index,))]
    return {**lock, "pins": pins, "target": targets[index] if index < len(targets) else {}}


def host_platform_name(host: tuple[str, str, str, str]) -> str:
    """uv's --python-platform spelling of ``host`` (the nearest level uv knows)."""
    os_name, machine, libc, level = host
    if os_name == "linux" and libc == "musl":
        return f"{machine}-unknown-linux-musl"
    if os_name == "linux":
        minor = int(level.split(".")[1]) if level.count(".") == 1 and level.split(".")[1].isdigit() else 17
        known = [n for n in map(int, _GLIBC_LEVELS) if n <= minor] or [17]
        return f"{machine}-manylinux_2_{known[-1]}"
    if os_name == "macos":
        return f"{'aarch64' if machine in ('arm64', 'aarch64') else machine}-apple-darwin"
    return "windows" if os_name.startswith("win") else f"{machine}-{os_name}"

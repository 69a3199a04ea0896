"""Pins remembered for a plan resolved on the spot (``hpm run``/``hpm install`` without
a lock), so that the same plan installed into the same environment again starts no
``uv pip compile``. Kept as ``.hpm-plan-lock.json`` beside the packages."""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from hpm_boot import payload, uvbin
from hpm_boot.compose import lock as lockmod
from hpm_boot.compose.manifest import GitSource
from hpm_boot.fsutil import write_atomic
from hpm_boot.target import state_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hpm_boot.compose.resolve import Plan
    from hpm_boot.install import InstallerOptions
    from hpm_boot.log import Log
    from hpm_boot.target import Environment


FILE_NAME = ".hpm-plan-lock.json"


def lock_for(plan: Plan, target: Environment, options: InstallerOptions,
             environ: Mapping[str, str], log: Log) -> tuple[dict[str, Any], str | None]:
    """The lock of a plan resolved on the spot, and the key to remember it under.

    Pinning runs ``uv pip compile``, a process of its own. When the same plan (same
    manifests, same selection, same index options, same Python, local sources with
    unchanged build metadata) was installed into this environment before, the pins
    remembered then are reused, so a second ``hpm run`` in dev mode starts no installer
    at all. Plans with git sources are pinned afresh each time (a branch may move).
    """
    key = None
    if not any(isinstance(p.source, GitSource) for p in plan.packages):
        stats = {}
        for p in plan.packages:
            for name in lockmod.BUILD_FILES if p.path else ():
                try:
                    st = os.stat(os.path.join(p.path, name))
                except OSError:
                    continue
                stats[f"{p.path}/{name}"] = [st.st_mtime_ns, st.st_size]
        key = payload.digest({"plan": lockmod.plan_digest(plan), "index": options.uv_args(),
                              "python": target.python_version, "stats": stats})
        cached = _read(target)
        if cached is not None and cached.get("key") == key and isinstance(cached.get("lock"), dict):
            log.info(f"pins of this plan remembered from an earlier install ({log.elapsed():.2f} s)")
            return cached["lock"], None
    uv = options.uv or uvbin.find_uv(environ)
    locked_for = lockmod.default_target(target.python_version, None)
    started = time.perf_counter()
    lock = lockmod.make_lock(plan, locked_for, uv, options.uv_args())
    info, warnings = lockmod.registry_notes(plan, lock)
    for line in info:
        log.debug(line)
    for warning in warnings:
        log.warning(warning)
    data = lockmod.to_dict(lock)
    log.info(f"pinned {len(data['pins'])} distributions ({time.perf_counter() - started:.2f} s)")
    return data, key


def _read(target: Environment) -> dict[str, Any] | None:
    import json

    path = state_path(target, FILE_NAME)
    try:
        with open(path or "", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remember(target: Environment, key: str, lock: Mapping[str, Any]) -> None:
    """Keep the pins of an installed plan for the next run (best effort)."""
    import json

    path = state_path(target, FILE_NAME)
    if path is None:
        return
    with contextlib.suppress(OSError):  # best effort: without it the next run pins again
        write_atomic(path, json.dumps({"key": key, "lock": lock}, sort_keys=True).encode())

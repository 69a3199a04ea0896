"""``hpm install``: install the lock or the plan into the target environment; no exec.

``install_selection`` is the install step ``hpm run`` and ``hpm smoke`` share.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from hpm_boot.commands._options import (
    Environ,
    add_installer_options,
    installer_options,
    load_plan,
    registry_dirs,
)

if TYPE_CHECKING:
    from hpm_boot.log import Log
    from hpm_boot.target import Environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``install`` and ``run`` share."""
    parser.add_argument("--lock", metavar="FILE", help="a lock file (JSON or payload); else HPM_LOCK_FILE, "
                        "HPM_LOCK_B64, or the registry")
    parser.add_argument("--python", metavar="PYTHON",
                        help="install into this interpreter (default: the one running hpm; HPM_VENV wins)")
    add_installer_options(parser)


def main(args: argparse.Namespace, environ: Environ) -> int:
    install_selection(args, environ)
    return 0


def _given_lock(args: argparse.Namespace, environ: Environ, log: Log) -> dict[str, Any] | None:
    """The lock of --lock FILE, HPM_LOCK_FILE or HPM_LOCK_B64, shape-checked; None when
    there is none (the registry is resolved instead)."""
    from hpm_boot import payload
    from hpm_boot.compose import lock as lockmod

    loaded = payload.load_lock(environ, args.lock)
    if loaded is None:
        return None
    data, source = loaded
    lockmod.from_dict(data, source)  # shape check: a bad lock is 65 before anything runs
    log.info(f"lock from {source}")
    return data


def install_selection(args: argparse.Namespace, environ: Environ,
                      command: tuple[str | None, list[str], None, str] | None = None
                      ) -> tuple[dict[str, Any], Environment, Log]:
    """Install the lock or the resolved plan; (lock, target environment, log). The lock's
    pins are those that apply here (``compose.lock.applicable``). ``command``
    (entrypoint, cmd, None, origin: ``choose_command``'s arguments) is checked against
    the plan before anything is installed."""
    from hpm_boot import install, platforms
    from hpm_boot.compose import lock as lockmod
    from hpm_boot.compose import planlock
    from hpm_boot.handover import choose_command
    from hpm_boot.log import Log

    log = Log(environ)
    data = _given_lock(args, environ, log)
    options = installer_options(args)
    plan = None
    if data is None:
        plan = load_plan(args, environ, log)
        dirs = ", ".join(map(str, registry_dirs(args, environ)))
        log.info(f"resolved {len(plan.packages)} packages from {dirs} "
                 f"({plan.mode} mode, {log.elapsed():.2f} s)")
    if command is not None:  # an unknown entrypoint is 66 before anything is installed
        packages = data["packages"] if data is not None else [
            {"name": p.name, "entrypoints": p.entrypoints} for p in plan.packages]
        choose_command({"packages": packages}, *command)
    target = install.prepare_environment(environ, args.python, options.uv, log)
    key = None
    if data is None:
        data, key = planlock.lock_for(plan, target, options, environ, log)
    applicable = platforms.check_target(lockmod.applicable(data), target.python_version)  # 78 before anything
    install.install(applicable, target, options, environ, log)
    if key is not None:
        planlock.remember(target, key, data)
    return applicable, target, log

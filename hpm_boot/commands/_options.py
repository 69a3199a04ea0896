"""Options that several commands share, and what they mean: the selection (which
registry, packages, groups, providers, mode), the installer's sources, the lock target.

Each ``add_*`` adds a group of options to a command's parser; the functions beside it
read them back, with the environment variables as fallback (a flag, when given,
replaces its variable).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hpm_boot import contract
from hpm_boot.errors import UsageError

if TYPE_CHECKING:
    from hpm_boot.compose.resolve import Plan, Selection
    from hpm_boot.install import InstallerOptions
    from hpm_boot.log import Log

Environ = Mapping[str, str]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def add_selection(parser: argparse.ArgumentParser, default: object = None) -> None:
    """Options of every command that resolves the registry. ``default=argparse.SUPPRESS``
    adds them again to a sub-command, where an absent option keeps the value given before
    the sub-command instead of resetting it."""
    g = parser.add_argument_group("selection")
    g.add_argument("-r", "--registry", action="append", metavar="DIR", default=default,
                   help="registry directory (repeatable; later ones override earlier ones)")
    g.add_argument("-w", "--with", dest="with_", action="append", metavar="NAME", default=default,
                   help="a package or virtual to include (repeatable, or comma-separated)")
    g.add_argument("-g", "--group", action="append", metavar="NAME", default=default,
                   help="a feature group to include (repeatable, or comma-separated)")
    g.add_argument("-p", "--provide", action="append", metavar="VIRTUAL=PACKAGE", default=default,
                   help="choose the provider of a virtual package (repeatable)")
    g.add_argument("--mode", choices=("dev", "prod"), default=default,
                   help="dev or prod (default: RUN_MODE, else prod)")
    g.add_argument("--no-defaults", action="store_true", default=False if default is None else default,
                   help="ignore defaults.with/groups/providers of hpm-registry.yaml")


def registry_dirs(args: argparse.Namespace, environ: Environ) -> list[Path]:
    given = (getattr(args, "global_registry", None) or []) + (getattr(args, "registry", None) or [])
    if given:
        return [Path(d) for d in given]
    if environ.get(contract.REGISTRY):
        return [Path(d) for d in environ[contract.REGISTRY].split(os.pathsep) if d]
    return [Path("registry")]


def mode_of(args: argparse.Namespace, environ: Environ) -> str:
    if getattr(args, "mode", None):
        return str(args.mode)
    mode = environ.get(contract.RUN_MODE, "").strip().lower() or "prod"
    if mode not in ("dev", "prod"):
        raise UsageError(f"{contract.RUN_MODE}={environ[contract.RUN_MODE]!r}: expected dev or prod")
    return mode


def selection_of(args: argparse.Namespace, environ: Environ) -> Selection:
    from hpm_boot.compose.resolve import Selection

    def listed(flag: list[str] | None, var: str) -> tuple[str, ...]:
        if flag:
            return tuple(v for item in flag for v in _split(item))
        return tuple(_split(environ.get(var)))

    providers: list[tuple[str, str, str]] = []
    flag_providers = [v for item in (args.provide or []) for v in _split(item)]
    items = [(v, "--provide") for v in flag_providers] or [
        (v, contract.PROVIDERS) for v in _split(environ.get(contract.PROVIDERS))
    ]
    for item, origin in items:
        virtual, sep, package = item.partition("=")
        if not sep or not virtual.strip() or not package.strip():
            raise UsageError(f"{origin} {item!r}: expected VIRTUAL=PACKAGE")
        providers.append((virtual.strip(), package.strip(), origin))
    return Selection(
        with_=listed(args.with_, contract.WITH),
        groups=listed(args.group, contract.GROUPS),
        providers=tuple(providers),
        mode=mode_of(args, environ),  # type: ignore[arg-type]
        use_defaults=not args.no_defaults,
    )


def load_plan(args: argparse.Namespace, environ: Environ, log: Log | None = None) -> Plan:
    """The plan of the selection; its warnings go to ``log`` (default: a new ``Log(environ)``)."""
    from hpm_boot.compose import registry, resolve
    from hpm_boot.log import Log

    log = log or Log(environ)
    selection = selection_of(args, environ)
    reg = registry.load(registry_dirs(args, environ), selection.mode)
    plan = resolve.resolve(reg, selection)
    for warning in plan.warnings:
        log.warning(warning)
    return plan


def add_installer_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("installer")
    g.add_argument("--find-links", action="append", default=[], metavar="DIR|URL",
                   help="also look for distributions here (passed to uv and pip)")
    g.add_argument("--index-url", metavar="URL", help="the package index (default: uv's, or UV_INDEX_URL)")
    g.add_argument("--no-index", action="store_true", help="use no index, only --find-links")
    g.add_argument("--offline", action="store_true", help="no network: only the installer's cache")


def installer_options(args: argparse.Namespace) -> InstallerOptions:
    from hpm_boot.install import InstallerOptions

    return InstallerOptions(find_links=tuple(args.find_links), index_url=args.index_url,
                            no_index=args.no_index, offline=args.offline)


def add_target_options(parser: argparse.ArgumentParser, default: str, repeatable: bool = False) -> None:
    """``--python-version`` and ``--python-platform``: the interpreter a lock is made for;
    ``default`` says whose they are when not given. ``repeatable``: one lock for several
    platforms (``args.python_platform`` is then a list or None)."""
    parser.add_argument("--python-version", metavar="X.Y", action="append" if repeatable else "store",
                        help=f"lock for this Python (default: {default})")
    parser.add_argument("--python-platform", metavar="PLATFORM", action="append" if repeatable else "store",
                        help=f"lock for this platform, in uv's spelling, e.g. x86_64-manylinux_2_28 "
                        f"({'repeatable: one lock with the files of each; ' if repeatable else ''}"
                        f"default: {default})")

"""``hpm run``: install what is missing, then exec the command or entrypoint
(docs/running.md); with ``--ephemeral``, in a throwaway environment made by uv.

A run from a lock whose packages are installed never reaches this module: the warm
start (``hpm_boot.warmstart``) answers first.
"""

from __future__ import annotations

import argparse
import os

from hpm_boot import contract
from hpm_boot.commands import install
from hpm_boot.commands._options import Environ
from hpm_boot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    install.add_arguments(parser)
    parser.add_argument("--entrypoint", metavar="NAME|PKG:NAME", help="run a manifest entrypoint")
    parser.add_argument("--ephemeral", action="store_true",
                        help="run in a throwaway environment made by `uv run --project .hpm/ephemeral/<id>`")
    parser.add_argument("cmd", nargs="*", metavar="CMD", help="the command to exec (after --)")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot import handover, warmstart

    if args.ephemeral:
        return run_ephemeral(args, environ)
    entrypoint, origin = handover.requested_entrypoint(args.entrypoint, environ)
    data, target, log = install.install_selection(args, environ, command=(entrypoint, args.cmd, None, origin))
    argv = handover.choose_command(data, entrypoint, args.cmd, None, origin)
    from_lock = args.lock or contract.LOCK_FILE in environ or contract.LOCK_B64 in environ
    raw = warmstart.lock_input(environ, args.lock) if from_lock else None
    if raw is not None and not any(k in environ for k in contract.KEY_VARS) and args.python is None:
        warmstart.write_stamp(target, raw, data)  # the next start takes the warm path at once
    log.info(f"exec {handover.quote_argv(argv)} ({log.elapsed():.2f} s)")
    handover.hand_over(argv, target, handover.with_mode(environ, data.get("mode")), log)


def run_ephemeral(args: argparse.Namespace, environ: Environ) -> int:
    """``hpm run --ephemeral [--entrypoint NAME] [-- CMD...]``: exec uv run in the plan's env."""
    from hpm_boot import reuse
    from hpm_boot.commands._options import installer_options, registry_dirs, selection_of
    from hpm_boot.compose import ephemeral
    from hpm_boot.log import Log

    log = Log(environ)
    if not args.entrypoint and not args.cmd:
        raise UsageError("nothing to run: give a command after -- or --entrypoint NAME")
    if args.lock:
        raise UsageError("--ephemeral builds its environment from the registry; it does not take --lock",
                         "drop --lock, or run the lock with `hpm run --lock FILE` (no --ephemeral)")
    directory, fd, record = ephemeral.prepare(
        "run", reuse.opts_of(args), registry_dirs(args, environ), selection_of(args, environ),
        installer_options(args), args.python, args.entrypoint, environ, log)
    cmd = [*(record["entry"] or []), *args.cmd]
    log.info(f"ephemeral environment {os.path.basename(directory)}: exec {' '.join(cmd)} "
             f"({log.elapsed():.2f} s)")
    reuse.exec_record(record, cmd, fd, environ)

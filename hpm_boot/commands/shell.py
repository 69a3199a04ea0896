"""``hpm shell``: ``$SHELL`` (else /bin/sh) inside the plan's ephemeral environment."""

from __future__ import annotations

import argparse
import os

from hpm_boot.commands._options import Environ, add_installer_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python", metavar="PYTHON",
                        help="the interpreter of the environment (default: the one running hpm)")
    add_installer_options(parser)


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot import reuse
    from hpm_boot.commands._options import installer_options, registry_dirs, selection_of
    from hpm_boot.compose import ephemeral
    from hpm_boot.log import Log

    log = Log(environ)
    directory, fd, record = ephemeral.prepare(
        "shell", reuse.opts_of(args), registry_dirs(args, environ), selection_of(args, environ),
        installer_options(args), args.python, None, environ, log)
    shell = environ.get("SHELL") or "/bin/sh"
    log.info(f"ephemeral environment {os.path.basename(directory)}: {shell} (exit to leave)")
    reuse.exec_record(record, [shell], fd, environ)

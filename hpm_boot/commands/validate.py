"""``hpm validate``: check every manifest and overlay; report all problems at once."""

from __future__ import annotations

import argparse

from hpm_boot.commands._options import Environ, registry_dirs
from hpm_boot.errors import DataError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--registry", action="append", metavar="DIR", help="registry directory")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot.compose import registry
    from hpm_boot.log import Log

    log = Log(environ)
    dirs = registry_dirs(args, environ)
    problems, warnings = registry.validate(dirs)
    for warning in warnings:
        log.warning(warning)
    if problems:  # one error (JSON logs, the termination log), every problem in its details
        raise DataError(f"{len(problems)} problem(s) in {', '.join(map(str, dirs))}, listed below "
                        "as file:line: field: problem", "\n".join(map(str, problems)))
    reg = registry.load(dirs, "prod")
    print(f"ok: {len(reg.entries)} packages, {len(reg.virtuals())} virtuals, "
          f"{len(reg.groups())} groups in {', '.join(map(str, dirs))}")
    return 0

"""``hpm validate``: check every manifest and overlay; report all problems at once."""

from __future__ import annotations

import argparse
import sys

from hpm_boot.commands._options import Environ, registry_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--registry", action="append", metavar="DIR", help="registry directory")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot.compose import registry
    from hpm_boot.log import Log

    log = Log(environ)
    dirs = registry_dirs(args, environ)
    problems, warnings = registry.validate(dirs)
    if problems:
        print(f"hpm: error: {len(problems)} problem(s) in {', '.join(map(str, dirs))}, listed below "
              "as file:line: field: problem", file=sys.stderr)
        for problem in problems:
            print(problem, file=sys.stderr)
    for warning in warnings:
        log.warning(warning)
    if problems:
        return 65
    reg = registry.load(dirs, "prod")
    print(f"ok: {len(reg.entries)} packages, {len(reg.virtuals())} virtuals, "
          f"{len(reg.groups())} groups in {', '.join(map(str, dirs))}")
    return 0

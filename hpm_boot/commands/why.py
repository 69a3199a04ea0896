"""``hpm why NAME``: the chain of reasons that put NAME (or chose a provider) in the plan."""

from __future__ import annotations

import argparse

from hpm_boot.commands._options import Environ, load_plan
from hpm_boot.commands._output import display_path
from hpm_boot.errors import NotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a package or virtual")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot.compose import resolve

    plan = load_plan(args, environ)
    lines = resolve.why_chain(plan, args.name, display_path)
    if not lines:
        raise NotFoundError(f"{args.name} is not in the plan",
                            f"the plan has: {', '.join(p.name for p in plan.packages) or 'nothing'}")
    for i, line in enumerate(lines):
        print(("  " * i + "<- " if i else "") + line)
    return 0

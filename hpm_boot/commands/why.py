"""``hpm why NAME``: the chain of reasons that put NAME (or chose a provider) in the plan."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hpm_boot.commands._options import Environ, load_plan
from hpm_boot.commands._output import display_path
from hpm_boot.errors import NotFoundError

if TYPE_CHECKING:
    from hpm_boot.compose.resolve import Plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a package or virtual")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from packaging.utils import canonicalize_name

    from hpm_boot.compose import lock as lockmod
    from hpm_boot.compose import resolve

    plan = load_plan(args, environ)
    lines = resolve.why_chain(plan, args.name, display_path)
    shaped = _registry_lines(plan, canonicalize_name(args.name))
    if not lines and shaped:  # a third-party distribution the registry constrains
        print(f"{canonicalize_name(args.name)} is no package of the registry; hpm-registry.yaml "
              "shapes its pin in every plan:")
        for line in shaped:
            print("  " + line)
        return 0
    if not lines:
        raise NotFoundError(f"{args.name} is not in the plan",
                            f"the plan has: {', '.join(p.name for p in plan.packages) or 'nothing'}")
    for i, line in enumerate(lines):
        print(("  " * i + "<- " if i else "") + line)
    pkg = plan.package(args.name) or next(
        (plan.package(p.package) for p in plan.providers if p.virtual == canonicalize_name(args.name)), None)
    if pkg is not None:
        dist = lockmod.known(pkg.source, pkg.name, pkg.path, lockmod.cached_names(environ))
        if dist and dist != pkg.name:
            print(f"{pkg.name} installs the distribution {dist}")
    for line in shaped:
        print(line)
    return 0


def _registry_lines(plan: Plan, name: str) -> list[str]:
    """The registry's constraints and overrides on distribution ``name``, with their lines."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    out = []
    for key, word in (("constraints", "constraint"), ("overrides", "override")):
        for e in getattr(plan, key):
            if canonicalize_name(Requirement(e.requirement).name) == name:
                out.append(f"{word} {e.requirement}  [{e.where}]")
    return out

"""``hpm plan``: the resolved plan and why each package is in (docs/plan-format.md)."""

from __future__ import annotations

import argparse
import sys

from hpm_boot.commands._options import Environ, load_plan
from hpm_boot.commands._output import describe_source, print_table
from hpm_boot.log import mask_credentials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the plan as stable JSON (docs/plan-format.md)")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot.compose import lock as lockmod
    from hpm_boot.compose import resolve

    plan = load_plan(args, environ)
    if args.json:
        sys.stdout.write(mask_credentials(resolve.to_json(plan).decode()))
        return 0
    print(f"plan: {len(plan.packages)} packages, mode {plan.mode}")
    rows = [("PACKAGE", "VERSION", "DISTRIBUTION", "SOURCE", "WHY")]
    cache = lockmod.cached_names(environ)
    for p in plan.packages:
        source = describe_source(p.source)
        if p.source_mode == "dev":
            source += " (dev)"
        dist = lockmod.known(p.source, p.name, p.path, cache) or "?"  # found out when locked
        rows.append((p.name, p.version, "=" if dist == p.name else dist, source, p.reason.detail))
    print_table(rows)
    if plan.providers:
        print("\nproviders:")
        for prov in plan.providers:
            print(f"  {prov.virtual} -> {prov.package}  ({prov.rule}: {prov.detail})")
    for key in ("constraints", "overrides"):
        entries = getattr(plan, key)
        if entries:
            print(f"\nregistry {key} (uv --{key}, for every plan of this registry):")
            for e in entries:
                print(f"  {e.requirement}  [{e.where}]")
    return 0

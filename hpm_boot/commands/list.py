"""``hpm list``: the registry's packages, virtuals and groups."""

from __future__ import annotations

import argparse
import sys

from hpm_boot.commands._options import Environ, mode_of, registry_dirs
from hpm_boot.commands._output import print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot.compose import registry

    reg = registry.load(registry_dirs(args, environ), mode_of(args, environ))  # type: ignore[arg-type]
    if args.json:
        import msgspec

        data = {
            "packages": {
                name: {"version": e.manifest.version, "manifest": str(e.file),
                       "provides": e.manifest.provides, "groups": e.manifest.groups,
                       "entrypoints": e.manifest.entrypoints, "description": e.manifest.description}
                for name, e in reg.entries.items()
            },
            "virtuals": reg.virtuals(),
            "groups": reg.groups(),
        }
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data, order="sorted")).decode() + "\n")
        return 0
    rows = [("PACKAGE", "VERSION", "PROVIDES", "GROUPS", "DESCRIPTION")]
    for name, e in reg.entries.items():
        m = e.manifest
        rows.append((name, m.version, ",".join(m.provides) or "-", ",".join(m.groups) or "-",
                     m.description))
    print_table(rows)
    virtuals = reg.virtuals()
    if virtuals:
        print("\nvirtuals:")
        for v, providers in virtuals.items():
            print(f"  {v}: {', '.join(providers)}")
    groups = reg.groups()
    if groups:
        print("\ngroups:")
        for g, members in groups.items():
            print(f"  {g}: {', '.join(members)}")
    return 0

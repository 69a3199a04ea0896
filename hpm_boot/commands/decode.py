"""``hpm decode``: check and print the lock carried by HPM_LOCK_B64, HPM_LOCK_FILE or
``--from FILE``, credentials in URLs masked."""

from __future__ import annotations

import argparse
import sys

from hpm_boot.commands._options import Environ
from hpm_boot.commands._output import print_table
from hpm_boot.errors import NotFoundError
from hpm_boot.log import mask_credentials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", metavar="FILE",
                        help="read this file instead of the environment")
    parser.add_argument("--json", action="store_true",
                        help="print the lock as JSON (credentials in URLs masked)")


def main(args: argparse.Namespace, environ: Environ) -> int:
    """Check and print the lock of HPM_LOCK_B64, HPM_LOCK_FILE or --from FILE; URLs masked."""
    from hpm_boot import payload
    from hpm_boot.compose import lock as lockmod

    loaded = payload.load_lock(environ, args.source, "--from")
    if loaded is None:
        raise NotFoundError("no lock to decode: HPM_LOCK_B64 and HPM_LOCK_FILE are unset",
                            "give one, or a file with --from FILE")
    data, source = loaded
    lock = lockmod.from_dict(data, source)
    if args.json:
        sys.stdout.write(mask_credentials(lockmod.to_json(lock).decode("utf-8")))
        return 0
    out: list[str] = [
        f"source:   {source}",
        f"digest:   {payload.digest(data)}",
        f"mode:     {lock.mode}    made by hpm {lock.hpm}",
        f"targets:  {lockmod.describe_targets(lock.targets)}",
        f"plan:     {lock.plan_digest}",
        "",
    ]
    print("\n".join(mask_credentials(line) for line in out))
    rows = [("PACKAGE", "VERSION", "DISTRIBUTION", "MANAGER", "SOURCE", "REQUIREMENT")]
    rows += [(p.name, p.version, p.distribution or "=", p.manager,
              p.source + (" (dev)" if p.source_mode == "dev" else ""), mask_credentials(p.requirement))
             for p in lock.packages]
    print_table(rows)
    eps = [mask_credentials(f"{p.name}:{n} = {c}") for p in lock.packages for n, c in p.entrypoints.items()]
    if eps:
        print("\nentrypoints:\n  " + "\n  ".join(eps))
    hashed = sum(1 for p in lock.pins if p.hashes or p.files)
    print(f"\npins:     {len(lock.pins)} ({hashed} with hashes)")
    for pin in lock.pins:
        what = f"=={pin.version}" if pin.version else f" @ {pin.url}"
        flags = (" editable" if pin.editable else "") + (f" ; {pin.markers}" if pin.markers else "")
        if pin.targets:
            flags += f"  (targets {', '.join(str(i + 1) for i in pin.targets)})"
        count = len(pin.files) or len(pin.hashes)
        hashes = f"  [{count} {'file' if pin.files else 'hash'}{'s' if count > 1 else ''}]" if count else ""
        print(mask_credentials(f"  {pin.name}{what}{flags}{hashes}"))
    return 0

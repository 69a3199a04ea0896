"""``python -m app_core [serve|check]``: show which plugins the environment was composed of."""

import os
import sys

from app_core import __version__, plugins


def main(argv: list[str]) -> int:
    found = plugins()
    print(f"app-core {__version__} (RUN_MODE={os.environ.get('RUN_MODE', 'prod')})")
    for interface, plugin in sorted(found.items()):
        print(f"  {interface}: {plugin.describe()}")
    if not found:
        print("  no plugins installed")
    if argv[:1] == ["check"]:
        return 0 if all(p.describe() for p in found.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ``hpm`` command line: the parser and ``main``, the edge where errors become one
``hpm: error:`` line (plus details) and an exit code.

The commands themselves are in ``hpm_boot.commands``, one module each; only the module
of the command being run is imported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from hpm_boot import __version__
from hpm_boot.commands import COMMANDS
from hpm_boot.commands._options import Environ, add_selection
from hpm_boot.errors import HpmError, UsageError

EPILOG = """\
environment (docs/running.md, "Environment variables", says more):
  HPM_REGISTRY   registry directories, separated by ':' (default ./registry)
  RUN_MODE       dev or prod (default prod); --mode wins; the app is told the mode
  HPM_WITH, HPM_GROUPS, HPM_PROVIDERS
                 comma-separated selections; the flags win when given
  HPM_LOCK_FILE, HPM_LOCK_B64
                 a lock to install and run instead of resolving the registry
  HPM_LOCK_KEY, HPM_LOCK_KEY_FILE
                 the signing key: sign locks, require signatures
  HPM_VENV       the target virtual environment
  HPM_UV, HPM_CONDA
                 the installers' binaries (default: found on PATH)
  HPM_CACHE      where hpm.pyz unpacks itself;  HPM_EPHEMERAL_DIR  ephemeral environments
  HPM_READY_FILE touched just before the exec
  HPM_ENTRYPOINT the manifest entrypoint `hpm run` execs (NAME or PKG:NAME); the
                 command after -- becomes its arguments; --entrypoint wins
  HPM_LOG        quiet | info | debug;  HPM_LOG_FORMAT=json for log pipelines
  HPM_TERMINATION_LOG
                 where the one-line cause of a failure goes (default /dev/termination-log)
  HPM_IMAGE, HPM_ENGINE
                 hpm docker run: the image and the engine (HPM_IMAGE: also lock --format k8s)

exit codes: 0 ok, 1 stale lock (lock --check), failed smoke test or dirty checkout
  (dev pin), 2 usage, 65 invalid data, 66 missing, 69 no installer or container engine,
  73 cannot write, 74 installer failed,
  77 signature, 78 resolution, 126 command not executable, 127 no command,
  128+N stopped by signal N while installing
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with the contract's error shape: a bad command line is a ``UsageError``,
    reported by ``main`` as every error is (one line, the usage as its details, the JSON
    log and the termination log alike)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage().rstrip())


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; the ``chosen`` command gets its arguments (and its module is
    imported), the others only their name and summary: `hpm --version` imports none."""
    parser = _Parser(
        prog="hpm",
        description="Compose a plugin application's environment from YAML manifests, "
        "install it with uv, and exec the application.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print version and build, then exit")
    parser.add_argument("-r", "--registry", dest="global_registry", action="append", metavar="DIR",
                        help="registry directory, before the command (same as after it)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, info in COMMANDS.items():
        p = sub.add_parser(name, help=info.summary, description=info.summary)
        if name != chosen:
            continue
        module = importlib.import_module(f"hpm_boot.commands.{info.module}")
        if info.selects:
            add_selection(p)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: the first argument that is not a global option."""
    args = iter(argv)
    for arg in args:
        if arg in ("-r", "--registry"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str], environ: Environ | None = None) -> int:
    environ = os.environ if environ is None else environ
    argv = list(argv)
    parser = build_parser(command_of(argv))
    tail: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1 :]
    try:
        args = parser.parse_args(argv)
        if tail:
            args.cmd = [*args.cmd, *tail]
    except SystemExit as exc:  # argparse: --help, --version of a sub-parser
        return int(exc.code or 0)
    except UsageError as exc:
        from hpm_boot.log import Log

        return Log(environ).error(exc)
    if args.version:
        from hpm_boot._pyz import build_info
        from hpm_boot.commands._output import hpm_commit

        info = build_info()
        print(f"hpm {info.get('version', __version__)} (commit {hpm_commit(info)})")
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args, environ)
    except HpmError as exc:
        from hpm_boot.log import Log

        return Log(environ).error(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

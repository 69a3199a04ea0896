"""The ``hpm`` command line: argparse commands; the only place that prints for humans.

Every command is a function ``cmd_NAME(args, env) -> int``. Errors travel as
``HpmError`` and become one ``hpm: error:`` line (plus details) in ``main``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from hpm_boot import __version__
from hpm_boot.errors import HpmError, UsageError, mask_credentials

Env = Mapping[str, str]
Command = Callable[[argparse.Namespace, Env], int]

EPILOG = """\
environment:
  HPM_REGISTRY   registry directories, separated by ':' (default ./registry)
  RUN_MODE       dev or prod (default prod); --mode wins
  HPM_WITH, HPM_GROUPS, HPM_PROVIDERS
                 comma-separated selections; the flags win when given
  HPM_LOCK_FILE, HPM_LOCK_B64
                 a lock to install and run instead of resolving the registry
  HPM_LOG        quiet | info | debug;  HPM_LOG_FORMAT=json for log pipelines

exit codes: 0 ok, 2 usage, 65 invalid data, 66 missing, 69 no installer,
  73 cannot write, 74 installer failed, 77 signature, 78 resolution, 127 no command
"""


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def add_selection(parser: argparse.ArgumentParser) -> None:
    """Options of every command that resolves the registry."""
    g = parser.add_argument_group("selection")
    g.add_argument("-r", "--registry", action="append", metavar="DIR",
                   help="registry directory (repeatable; later ones override earlier ones)")
    g.add_argument("-w", "--with", dest="with_", action="append", metavar="NAME",
                   help="a package or virtual to include (repeatable, or comma-separated)")
    g.add_argument("-g", "--group", action="append", metavar="NAME",
                   help="a feature group to include (repeatable, or comma-separated)")
    g.add_argument("-p", "--provide", action="append", metavar="VIRTUAL=PACKAGE",
                   help="choose the provider of a virtual package (repeatable)")
    g.add_argument("--mode", choices=("dev", "prod"), help="dev or prod (default: RUN_MODE, else prod)")
    g.add_argument("--no-defaults", action="store_true",
                   help="ignore defaults.with/groups/providers of hpm-registry.yaml")


def registry_dirs(args: argparse.Namespace, env: Env) -> list[Path]:
    if args.registry:
        return [Path(d) for d in args.registry]
    if env.get("HPM_REGISTRY"):
        return [Path(d) for d in env["HPM_REGISTRY"].split(os.pathsep) if d]
    return [Path("registry")]


def mode_of(args: argparse.Namespace, env: Env) -> str:
    if getattr(args, "mode", None):
        return str(args.mode)
    mode = env.get("RUN_MODE", "").strip().lower() or "prod"
    if mode not in ("dev", "prod"):
        raise UsageError(f"RUN_MODE={env['RUN_MODE']!r}: expected dev or prod")
    return mode


def selection_of(args: argparse.Namespace, env: Env):  # -> resolve.Selection
    from hpm_boot.resolve import Selection

    def listed(flag: list[str] | None, var: str) -> tuple[str, ...]:
        if flag:
            return tuple(v for item in flag for v in _split(item))
        return tuple(_split(env.get(var)))

    providers: list[tuple[str, str, str]] = []
    flag_providers = [v for item in (args.provide or []) for v in _split(item)]
    items = [(v, "--provide") for v in flag_providers] or [
        (v, "HPM_PROVIDERS") for v in _split(env.get("HPM_PROVIDERS"))
    ]
    for item, origin in items:
        virtual, sep, package = item.partition("=")
        if not sep or not virtual.strip() or not package.strip():
            raise UsageError(f"{origin} {item!r}: expected VIRTUAL=PACKAGE")
        providers.append((virtual.strip(), package.strip(), origin))
    return Selection(
        with_=listed(args.with_, "HPM_WITH"),
        groups=listed(args.group, "HPM_GROUPS"),
        providers=tuple(providers),
        mode=mode_of(args, env),  # type: ignore[arg-type]
        use_defaults=not args.no_defaults,
    )


def load_plan(args: argparse.Namespace, env: Env, err: TextIO = sys.stderr):  # -> resolve.Plan
    from hpm_boot import registry, resolve

    selection = selection_of(args, env)
    reg = registry.load(registry_dirs(args, env), selection.mode)
    plan = resolve.resolve(reg, selection)
    for warning in plan.warnings:
        print(f"hpm: warning: {warning}", file=err)
    return plan


# ---------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import registry

    dirs = registry_dirs(args, env)
    problems, warnings = registry.validate(dirs)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"hpm: {len(problems)} problem(s) in {', '.join(map(str, dirs))}", file=sys.stderr)
        return 65
    reg = registry.load(dirs, "prod")
    print(f"ok: {len(reg.entries)} packages, {len(reg.virtuals())} virtuals, "
          f"{len(reg.groups())} groups in {', '.join(map(str, dirs))}")
    return 0


def cmd_list(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import registry

    reg = registry.load(registry_dirs(args, env), mode_of(args, env))  # type: ignore[arg-type]
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


def describe_source(source: object) -> str:
    from hpm_boot.manifest import GitSource, LocalSource, PypiSource, UrlSource

    if isinstance(source, GitSource):
        sub = f"#{source.subdirectory}" if source.subdirectory else ""
        return mask_credentials(f"git {source.url}@{source.ref}{sub}")
    if isinstance(source, PypiSource):
        return f"pypi {source.package or ''}{source.version or ''}".rstrip()
    if isinstance(source, UrlSource):
        return mask_credentials(f"url {source.url}")
    if isinstance(source, LocalSource):
        path = source.path
        if os.path.isabs(path) and path.startswith(os.getcwd() + os.sep):
            path = os.path.relpath(path)
        return f"{'editable' if source.editable else 'local'} {path}"
    return str(source)


def cmd_plan(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import resolve

    plan = load_plan(args, env)
    if args.json:
        sys.stdout.buffer.write(resolve.to_json(plan))
        return 0
    print(f"plan: {len(plan.packages)} packages, mode {plan.mode}")
    rows = [("PACKAGE", "VERSION", "SOURCE", "WHY")]
    for p in plan.packages:
        source = describe_source(p.source)
        if p.source_mode == "dev":
            source += " (dev)"
        rows.append((p.name, p.version, source, p.reason.detail))
    print_table(rows)
    if plan.providers:
        print("\nproviders:")
        for prov in plan.providers:
            print(f"  {prov.virtual} -> {prov.package}  ({prov.rule}: {prov.detail})")
    return 0


def cmd_why(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import resolve

    plan = load_plan(args, env)
    lines = resolve.why_chain(plan, args.name)
    if not lines:
        from hpm_boot.errors import NotFoundError

        raise NotFoundError(f"{args.name} is not in the plan",
                            f"the plan has: {', '.join(p.name for p in plan.packages) or 'nothing'}")
    for i, line in enumerate(lines):
        print(("  " * i + "<- " if i else "") + line)
    return 0


def print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpm",
        description="Compose a plugin application's environment from YAML manifests, "
        "install it with uv, and exec the application.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print version and build, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func: Command, help: str, select: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if select:
            add_selection(p)
        p.set_defaults(func=func)
        return p

    p = command("validate", cmd_validate, "check every manifest and overlay; report all problems",
                select=False)
    p.add_argument("-r", "--registry", action="append", metavar="DIR", help="registry directory")
    p = command("list", cmd_list, "the registry's packages, virtuals and groups")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("plan", cmd_plan, "the resolved plan and why each package is in")
    p.add_argument("--json", action="store_true", help="the plan as stable JSON (docs/plan-format.md)")
    p = command("why", cmd_why, "the chain of reasons that put NAME in the plan")
    p.add_argument("name", metavar="NAME", help="a package or virtual")
    return parser


def termination_log(message: str, path: str = "/dev/termination-log") -> None:
    """Kubernetes shows this file's content as the container's termination message."""
    try:
        if os.access(path, os.W_OK):
            with open(path, "w") as f:
                f.write(message + "\n")
    except OSError:
        pass


def report(exc: HpmError, err: TextIO = sys.stderr) -> int:
    message = mask_credentials(exc.message)
    print(f"hpm: error: {message}", file=err)
    if exc.details:
        print(mask_credentials(exc.details), file=err)
    termination_log(f"hpm: {message}")
    return exc.exit_code


def main(argv: Sequence[str], env: Env | None = None) -> int:
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.version:
        print(f"hpm {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args, env)
    except HpmError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

"""The ``hpm`` command line: argparse commands; the only place that prints for humans.

Every command is a function ``cmd_NAME(args, env) -> int``. Errors travel as
``HpmError`` and become one ``hpm: error:`` line (plus details) in ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from hpm_boot import __version__
from hpm_boot.errors import HpmError, UsageError, mask_credentials

if TYPE_CHECKING:  # imported lazily at run time: `hpm --version` reads no YAML, no msgspec
    from hpm_boot.boot import Environment
    from hpm_boot.install import InstallerOptions
    from hpm_boot.log import Log
    from hpm_boot.resolve import Plan, Selection

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

exit codes: 0 ok, 1 stale lock (lock --check) or failed smoke test, 2 usage,
  65 invalid data, 66 missing, 69 no installer, 73 cannot write, 74 installer failed,
  77 signature, 78 resolution, 126 command not executable, 127 no command,
  128+N stopped by signal N while installing
"""


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def add_selection(parser: argparse.ArgumentParser, default: object = None) -> None:
    """Options of every command that resolves the registry. ``default=argparse.SUPPRESS``
    adds them again to a sub-command, where an absent option keeps the value given before
    the sub-command instead of resetting it."""
    g = parser.add_argument_group("selection")
    g.add_argument("-r", "--registry", action="append", metavar="DIR", default=default,
                   help="registry directory (repeatable; later ones override earlier ones)")
    g.add_argument("-w", "--with", dest="with_", action="append", metavar="NAME", default=default,
                   help="a package or virtual to include (repeatable, or comma-separated)")
    g.add_argument("-g", "--group", action="append", metavar="NAME", default=default,
                   help="a feature group to include (repeatable, or comma-separated)")
    g.add_argument("-p", "--provide", action="append", metavar="VIRTUAL=PACKAGE", default=default,
                   help="choose the provider of a virtual package (repeatable)")
    g.add_argument("--mode", choices=("dev", "prod"), default=default,
                   help="dev or prod (default: RUN_MODE, else prod)")
    g.add_argument("--no-defaults", action="store_true", default=False if default is None else default,
                   help="ignore defaults.with/groups/providers of hpm-registry.yaml")


def registry_dirs(args: argparse.Namespace, env: Env) -> list[Path]:
    given = (getattr(args, "global_registry", None) or []) + (getattr(args, "registry", None) or [])
    if given:
        return [Path(d) for d in given]
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


def selection_of(args: argparse.Namespace, env: Env) -> Selection:
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


def load_plan(args: argparse.Namespace, env: Env, log: Log | None = None) -> Plan:
    """The plan of the selection; its warnings go to ``log`` (default: a new ``Log(env)``)."""
    from hpm_boot import registry, resolve
    from hpm_boot.log import Log

    log = log or Log(env)
    selection = selection_of(args, env)
    reg = registry.load(registry_dirs(args, env), selection.mode)
    plan = resolve.resolve(reg, selection)
    for warning in plan.warnings:
        log.warning(warning)
    return plan


# ---------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import registry
    from hpm_boot.log import Log

    log = Log(env)
    dirs = registry_dirs(args, env)
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
        return f"{'editable' if source.editable else 'local'} {display_path(source.path)}"
    return str(source)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as shown to people: relative when it is below the working directory."""
    text = os.fspath(path)
    if os.path.isabs(text) and text.startswith(os.getcwd() + os.sep):
        return os.path.relpath(text)
    return text


def cmd_plan(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import resolve

    plan = load_plan(args, env)
    if args.json:
        sys.stdout.write(mask_credentials(resolve.to_json(plan).decode()))
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


def add_installer_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("installer")
    g.add_argument("--find-links", action="append", default=[], metavar="DIR|URL",
                   help="also look for distributions here (passed to uv and pip)")
    g.add_argument("--index-url", metavar="URL", help="the package index (default: uv's, or UV_INDEX_URL)")
    g.add_argument("--no-index", action="store_true", help="use no index, only --find-links")
    g.add_argument("--offline", action="store_true", help="no network: only the installer's cache")


def add_target_options(parser: argparse.ArgumentParser, default: str) -> None:
    """``--python-version`` and ``--python-platform``: the interpreter a lock is made for;
    ``default`` says whose they are when not given."""
    parser.add_argument("--python-version", metavar="X.Y", help=f"lock for this Python (default: {default})")
    parser.add_argument("--python-platform", metavar="PLATFORM",
                        help=f"lock for this platform, in uv's spelling, e.g. x86_64-manylinux_2_28 "
                        f"(default: {default})")


def installer_options(args: argparse.Namespace) -> InstallerOptions:
    from hpm_boot.install import InstallerOptions

    return InstallerOptions(find_links=tuple(args.find_links), index_url=args.index_url,
                            no_index=args.no_index, offline=args.offline)


def cmd_lock(args: argparse.Namespace, env: Env) -> int:
    """Freeze the plan (docs/lock-format.md); --check compares an existing lock instead."""
    from hpm_boot import lock as lockmod
    from hpm_boot import payload
    from hpm_boot.log import Log
    from hpm_boot.uvbin import find_uv

    log = Log(env)
    if args.format == "json" and args.sign_key_file:
        raise UsageError("--sign-key-file signs a payload; a JSON lock carries no signature",
                         "add --format b64 (or env, docker, k8s), e.g. hpm lock --format b64 -o hpm.lock.b64")
    if args.format == "k8s":
        from hpm_boot import k8s

        k8s.check_name(args.name)
        k8s.check_image(args.image)
    target = lockmod.default_target(args.python_version, args.python_platform)
    plan = load_plan(args, env, log)
    if args.check:
        return _check_lock(args, plan, log)
    key = None if args.format == "json" else _signing_key(args, env)  # a bad key fails before any work
    _check_writable_output(args.output or ("hpm.lock.json" if args.format == "json" else "-"))
    options = installer_options(args)
    uv = find_uv(env) if any(p.manager in ("uv", "pip") for p in plan.packages) else None
    lock = lockmod.make_lock(plan, target, uv=uv, uv_args=options.uv_args(), env=env)
    warnings = lockmod.lock_warnings(lock)
    if args.format == "json":
        out = lockmod.to_json(lock).decode("utf-8")
    else:
        text = payload.encode(lockmod.to_dict(lock), key)
        size_warning = payload.check_carriable(text)
        if size_warning:
            warnings.append(size_warning)
    for warning in warnings:
        log.warning(warning)
    log.info(f"locked {len(lock.packages)} packages, {len(lock.pins)} pins for Python "
             f"{target.python_version}{' ' + target.python_platform if target.python_platform else ''} "
             f"({log.elapsed():.2f} s)")
    if args.format == "json":
        _write(args.output or "hpm.lock.json", out.encode("utf-8"), log)
        return 0
    if args.format == "b64":
        out = text + "\n"
    elif args.format == "env":
        out = f"{payload.ENV_B64}={text}\n"
    elif args.format == "docker":
        out = f"-e {payload.ENV_B64}={text}\n"
    else:
        from hpm_boot import k8s

        out = k8s.manifests(text, name=args.name, image=args.image, plan=plan)
    _write(args.output or "-", out.encode(), log)
    return 0


def _signing_key(args: argparse.Namespace, env: Env) -> bytes | None:
    """--sign-key-file, else HPM_LOCK_KEY / HPM_LOCK_KEY_FILE, else None (unsigned)."""
    from hpm_boot import payload

    if args.sign_key_file:
        return payload.read_key({payload.ENV_KEY_FILE: args.sign_key_file})
    return payload.read_key(env)


def _write(dest: str, data: bytes, log: Log) -> None:
    """Write ``data`` to stdout (``-``) or atomically to ``dest`` (a temporary file, renamed)."""
    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from hpm_boot.errors import NotWritableError

    path = Path(dest)
    if path.is_dir():
        raise NotWritableError(f"cannot write {path}: it is a directory", "give a file name with -o")
    from hpm_boot.boot import write_atomic

    try:
        write_atomic(str(path), data)
    except OSError as exc:
        raise NotWritableError(f"cannot write {path}: {exc.strerror}",
                               "check that its directory exists and is writable") from None
    log.info(f"wrote {path}")


def _check_writable_output(dest: str) -> None:
    """73 before git and uv run, not after, when the lock cannot be written where asked."""
    from hpm_boot.errors import NotWritableError

    if dest == "-":
        return
    path = Path(dest)
    if path.is_dir():
        raise NotWritableError(f"cannot write the lock to {path}: it is a directory",
                               "give a file name with -o")
    parent = path.parent
    writable = os.access(path, os.W_OK) if path.exists() else os.access(parent, os.W_OK)
    if not parent.is_dir() or not writable:
        raise NotWritableError(f"cannot write the lock to {path}: {parent} is missing or not writable")


def _check_lock(args: argparse.Namespace, plan: Plan, log: Log) -> int:
    """``hpm lock --check``: 0 up to date, 1 out of date (as ``uv lock --check``), 66 no lock."""
    from hpm_boot import lock as lockmod
    from hpm_boot import payload
    from hpm_boot.errors import NotFoundError

    path = args.output or "hpm.lock.json"
    if path == "-" or not Path(path).is_file():
        raise NotFoundError(f"no lock at {path} to check", "make one with `hpm lock` (-o names the file)")
    lock = lockmod.from_dict(payload.load_file(path, None, path)[0], path)
    stale = []
    if lock.plan_digest != lockmod.plan_digest(plan):
        stale.append("the registry or the selection changed since it was made")
    for flag, want, have in (("--python-version", args.python_version, lock.target.python_version),
                             ("--python-platform", args.python_platform, lock.target.python_platform)):
        if want is not None and want != have:
            stale.append(f"it was made for {flag} {have or '(none)'}, not {want}")
    if stale:
        log.emit("error", f"{path} is out of date: {'; '.join(stale)}; run `hpm lock` again")
        return 1
    print(f"{path} is up to date ({len(lock.packages)} packages, {len(lock.pins)} pins)")
    return 0


def cmd_decode(args: argparse.Namespace, env: Env) -> int:
    """Check and print the lock of HPM_LOCK_B64, HPM_LOCK_FILE or --from FILE; URLs masked."""
    from hpm_boot import lock as lockmod
    from hpm_boot import payload
    from hpm_boot.errors import NotFoundError

    loaded = payload.load_lock(env, args.source, "--from")
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
        f"target:   Python {lock.target.python_version}"
        f"{' on ' + lock.target.python_platform if lock.target.python_platform else ''}",
        f"plan:     {lock.plan_digest}",
        "",
    ]
    print("\n".join(mask_credentials(line) for line in out))
    rows = [("PACKAGE", "VERSION", "MANAGER", "SOURCE", "REQUIREMENT")]
    rows += [(p.name, p.version, p.manager, p.source + (" (dev)" if p.source_mode == "dev" else ""),
              mask_credentials(p.requirement)) for p in lock.packages]
    print_table(rows)
    eps = [mask_credentials(f"{p.name}:{n} = {c}") for p in lock.packages for n, c in p.entrypoints.items()]
    if eps:
        print("\nentrypoints:\n  " + "\n  ".join(eps))
    hashed = sum(1 for p in lock.pins if p.hashes)
    print(f"\npins:     {len(lock.pins)} ({hashed} with hashes)")
    for pin in lock.pins:
        what = f"=={pin.version}" if pin.version else f" @ {pin.url}"
        flags = (" editable" if pin.editable else "") + (f" ; {pin.markers}" if pin.markers else "")
        hashes = f"  [{len(pin.hashes)} hash]" if pin.hashes else ""
        print(mask_credentials(f"  {pin.name}{what}{flags}{hashes}"))
    return 0


def _lock_for_install(args: argparse.Namespace, env: Env,
                      log: Log) -> tuple[dict[str, Any] | None, str]:
    """(lock dict, source): --lock FILE, HPM_LOCK_FILE, HPM_LOCK_B64; (None, "registry") else."""
    from hpm_boot import lock as lockmod
    from hpm_boot import payload

    loaded = payload.load_lock(env, args.lock)
    if loaded is not None:
        data, source = loaded
        lockmod.from_dict(data, source)  # shape check: a bad lock is 65 before anything runs
        log.info(f"lock from {source}")
        return data, source
    return None, "registry"


def _install(args: argparse.Namespace, env: Env, command: tuple[str | None, list[str]] | None = None
             ) -> tuple[dict[str, Any], Environment, Log]:
    """Install the lock or the resolved plan; (lock dict, environment, log). ``command``
    (entrypoint, cmd) is checked against the plan before anything is installed."""
    from hpm_boot import boot
    from hpm_boot import install as installmod
    from hpm_boot.log import Log

    log = Log(env)
    data, _source = _lock_for_install(args, env, log)
    options = installer_options(args)
    plan = None
    if data is None:
        plan = load_plan(args, env, log)
        dirs = ", ".join(map(str, registry_dirs(args, env)))
        log.info(f"resolved {len(plan.packages)} packages from {dirs} "
                 f"({plan.mode} mode, {log.elapsed():.2f} s)")
    if command is not None:  # an unknown entrypoint is 66 before anything is installed
        packages = data["packages"] if data is not None else [
            {"name": p.name, "entrypoints": p.entrypoints} for p in plan.packages]
        boot.choose_command({"packages": packages}, *command)
    environment = installmod.prepare_environment(env, args.python, options.uv, log)
    key = None
    if data is None:
        data, key = installmod.lock_for_plan(plan, environment, options, env, log)
    installmod.install(data, environment, options, env, log)
    if key is not None:
        installmod.remember_plan_lock(environment, key, data)
    return data, environment, log


def cmd_install(args: argparse.Namespace, env: Env) -> int:
    _install(args, env)
    return 0


def cmd_run(args: argparse.Namespace, env: Env) -> int:
    from hpm_boot import boot

    if args.ephemeral:
        from hpm_boot import launch

        return launch.run_ephemeral(args, env)
    data, environment, log = _install(args, env, command=(args.entrypoint, args.cmd))
    argv = boot.choose_command(data, args.entrypoint, args.cmd)
    from hpm_boot.payload import ENV_B64, ENV_FILE

    from_lock = args.lock or ENV_FILE in env or ENV_B64 in env
    raw = boot.lock_input(env, args.lock) if from_lock else None
    if raw is not None and not any(k in env for k in boot.KEY_VARS) and args.python is None:
        boot.write_stamp(environment, raw, data)  # the next start takes the hot path at once
    log.info(f"exec {boot._quote(argv)} ({log.elapsed():.2f} s)")
    boot.hand_over(argv, environment, env, log)


def print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


# ---------------------------------------------------------------- parser


# Commands that live in their own module: it defines add_arguments(parser) and
# main(args, env) -> int, and keeps its module-level imports light.
MODULE_COMMANDS: tuple[tuple[str, str, str, bool], ...] = (
    ("shell", "hpm_boot.launch", "an interactive shell in the plan's ephemeral environment", True),
    ("gc", "hpm_boot.gc", "remove stale ephemeral environments", False),
    ("dev", "hpm_boot.dev", "plugin checkouts: checkout, status, pin", True),
    ("smoke", "hpm_boot.smoke", "CI image smoke test: install, import, run smoke entrypoints, JUnit report",
     True),
    ("self-check", "hpm_boot.selfcheck", "report interpreter, msgspec wheel, cache and installer", False),
    ("docker", "hpm_boot.dockerrun", "lock the selection and run an image with HPM_LOCK_B64 injected", True),
)


class _Parser(argparse.ArgumentParser):
    """argparse, with the contract's error shape: one ``hpm: error:`` line first."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"hpm: error: {message}\n")
        self.print_usage(sys.stderr)
        sys.exit(2)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; a command that lives in its own module gets its arguments (and its
    module is imported) only when it is ``chosen``: `hpm --version` imports none of them."""
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
    p = command("lock", cmd_lock, "freeze the plan: git SHAs, the pinned closure with hashes")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write (default: hpm.lock.json for json, stdout for the others; "
                   "- for stdout)")
    p.add_argument("--format", choices=("json", "b64", "env", "docker", "k8s"), default="json",
                   help="json: the lock file; b64: the HPM_LOCK_B64 value; env: a HPM_LOCK_B64= line; "
                   "docker: -e arguments; k8s: a Secret and a Deployment that reads it")
    add_target_options(p, "the running interpreter's")
    p.add_argument("--sign-key-file", metavar="FILE",
                   help="sign the payload with HMAC-SHA256 (default: HPM_LOCK_KEY / HPM_LOCK_KEY_FILE)")
    p.add_argument("--check", action="store_true",
                   help="compare the lock (-o, default hpm.lock.json) with the registry and selection: "
                   "exit 0 up to date, 1 out of date (as `uv lock --check`), 66 no lock")
    p.add_argument("--name", default="hpm-app",
                   help="k8s: name of the Deployment and its labels; the Secret is NAME-lock")
    p.add_argument("--image", default="registry.example.com/app:latest", help="k8s: the image to run")
    add_installer_options(p)
    p = command("decode", cmd_decode, "print the lock carried by HPM_LOCK_B64/HPM_LOCK_FILE, after "
                "checking it", select=False)
    p.add_argument("--from", dest="source", metavar="FILE", help="read this file instead of the environment")
    p.add_argument("--json", action="store_true",
                   help="print the lock as JSON (credentials in URLs masked)")
    for name, func, text in (
        ("install", cmd_install, "install the lock or the plan into the target environment; no exec"),
        ("run", cmd_run, "install what is missing, then exec the command or entrypoint"),
    ):
        p = command(name, func, text)
        p.add_argument("--lock", metavar="FILE", help="a lock file (JSON or payload); else HPM_LOCK_FILE, "
                       "HPM_LOCK_B64, or the registry")
        p.add_argument("--python", metavar="PYTHON",
                       help="install into this interpreter (default: the one running hpm; HPM_VENV wins)")
        add_installer_options(p)
        if name == "run":
            p.add_argument("--entrypoint", metavar="NAME|PKG:NAME", help="run a manifest entrypoint")
            p.add_argument("--ephemeral", action="store_true",
                           help="run in a throwaway environment made by "
                           "`uv run --project .hpm/ephemeral/<id>`")
            p.add_argument("cmd", nargs="*", metavar="CMD", help="the command to exec (after --)")
    for name, module, text, select in MODULE_COMMANDS:
        if name != chosen:
            sub.add_parser(name, help=text, description=text)
            continue
        mod = importlib.import_module(module)
        p = command(name, mod.main, text, select=select)
        mod.add_arguments(p)
    return parser


def _source_commit() -> str | None:
    """The git commit of the checkout hpm runs from (an editable install), if any."""
    import subprocess

    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "hpm_boot"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not (here / ".git").exists():
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: the first argument that is not a global option."""
    args = iter(argv)
    for arg in args:
        if arg in ("-r", "--registry"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str], env: Env | None = None) -> int:
    env = os.environ if env is None else env
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
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.version:
        from hpm_boot._pyz import build_info

        info = build_info()
        commit = info.get("commit", "unknown")
        if commit == "unknown":
            commit = _source_commit() or commit
        print(f"hpm {info.get('version', __version__)} (commit {commit})")
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args, env)
    except HpmError as exc:
        from hpm_boot.log import Log

        return Log(env).error(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

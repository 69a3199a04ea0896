"""``hpm lock``: freeze the plan (docs/lock-format.md); ``--check`` compares an existing
lock with the registry and selection instead."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hpm_boot import contract
from hpm_boot.commands._options import (
    Environ,
    add_installer_options,
    add_target_options,
    installer_options,
    load_plan,
)
from hpm_boot.commands._output import write_output
from hpm_boot.errors import NotFoundError, NotWritableError, UsageError

if TYPE_CHECKING:
    from hpm_boot.compose.resolve import Plan
    from hpm_boot.log import Log

DEFAULT_FILE = "hpm.lock.json"
PYLOCK_FILE = "pylock.toml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE",
                   help=f"where to write (default: {DEFAULT_FILE} for json, stdout for the others; "
                   "- for stdout)")
    p.add_argument("--format", choices=("json", "b64", "env", "docker", "k8s", "pylock"), default="json",
                   help="json: the lock file; b64: the HPM_LOCK_B64 value; env: a HPM_LOCK_B64= line; "
                   "docker: -e arguments; k8s: a Secret and a Deployment that reads it; pylock: a PEP 751 "
                   "pylock.toml of the same closure and files (default file pylock.toml)")
    add_target_options(p, "the running interpreter's and this machine's", repeatable=True)
    p.add_argument("--sign-key-file", metavar="FILE",
                   help="sign the payload with HMAC-SHA256 (default: HPM_LOCK_KEY / HPM_LOCK_KEY_FILE)")
    p.add_argument("--check", action="store_true",
                   help=f"compare the lock (-o, default {DEFAULT_FILE}) with the registry and selection: "
                   "exit 0 up to date, 1 out of date (as `uv lock --check`), 66 no lock")
    p.add_argument("--name", default="hpm-app",
                   help="k8s: name of the Deployment and its labels; the Secret is NAME-lock")
    p.add_argument("--image", metavar="IMAGE",
                   help="k8s: the image the Deployment runs (default: HPM_IMAGE; required, there is no "
                   "sensible default)")
    p.add_argument("--init-container", action="store_true",
                   help="k8s: install in an initContainer into an emptyDir venv (HPM_VENV); the app "
                   "container then starts warm, with no installer")
    p.add_argument("--entrypoint", metavar="NAME|PKG:NAME",
                   help="k8s: the manifest entrypoint the app container runs (sets HPM_ENTRYPOINT)")
    add_installer_options(p)


def main(args: argparse.Namespace, environ: Environ) -> int:
    from hpm_boot import payload
    from hpm_boot.compose import lock as lockmod
    from hpm_boot.log import Log
    from hpm_boot.uvbin import find_uv

    log = Log(environ)
    if args.format in ("json", "pylock") and args.sign_key_file:
        raise UsageError("--sign-key-file signs a payload; a JSON lock carries no signature",
                         "add --format b64 (or env, docker, k8s), e.g. hpm lock --format b64 -o hpm.lock.b64")
    if args.format == "k8s":
        from hpm_boot.compose import k8s

        k8s.check_name(args.name)
        args.image = args.image or environ.get(contract.IMAGE)
        if not args.image:
            raise UsageError("--format k8s needs the image the Deployment runs: give --image IMAGE "
                             f"(or set {contract.IMAGE})", "e.g. --image registry.example.com/myapp:1.0")
        k8s.check_image(args.image)
    elif args.init_container or args.entrypoint:
        flag = "--init-container" if args.init_container else "--entrypoint"
        raise UsageError(f"{flag} shapes the Kubernetes manifests: it needs --format k8s",
                         f"e.g. hpm lock --format k8s {flag}{' serve' if flag == '--entrypoint' else ''}")
    targets = lockmod.default_targets(args.python_version, args.python_platform)
    plan = load_plan(args, environ, log)
    if args.entrypoint:  # an unknown or ambiguous name is 66 before git and uv run
        from hpm_boot.handover import choose_command

        choose_command({"packages": [{"name": p.name, "entrypoints": p.entrypoints} for p in plan.packages]},
                       args.entrypoint, [])
    if args.check:
        return _check_lock(args, plan, log)
    key = None if args.format in ("json", "pylock") else _signing_key(args, environ)  # fails before any work
    default_out = {"json": DEFAULT_FILE, "pylock": PYLOCK_FILE}.get(args.format, "-")
    if args.format == "pylock" and args.output not in (None, "-"):
        name = Path(args.output).name
        if not (name == PYLOCK_FILE or (name.startswith("pylock.") and name.endswith(".toml")
                                        and "." not in name[7:-5] and name[7:-5])):
            raise UsageError(f"-o {args.output}: PEP 751 names a lock file pylock.toml or pylock.NAME.toml",
                             "e.g. -o pylock.toml or -o pylock.prod.toml")
    _check_writable_output(args.output or default_out)
    options = installer_options(args)
    uv = find_uv(environ) if any(p.manager in ("uv", "pip") for p in plan.packages) else None
    pylocks: list[dict[str, object]] | None = [] if args.format == "pylock" else None
    lock = lockmod.make_lock(plan, targets, uv=uv, uv_args=options.uv_args(), environ=environ,
                             pylocks=pylocks)
    info, warnings = lockmod.registry_notes(plan, lock)
    for line in info:
        log.info(line)
    warnings += lockmod.lock_warnings(lock)
    if args.format != "json" and not args.python_platform and sys.platform != "linux":
        warnings.append(f"no --python-platform: locked for this machine ({targets[0].python_platform}), "
                        "not for a Linux container; give --python-platform, e.g. x86_64-manylinux_2_28")
    if args.format == "json":
        out = lockmod.to_json(lock).decode("utf-8")
    elif args.format == "pylock":
        from hpm_boot.compose.pylock import to_pylock

        out = to_pylock(lock, pylocks or [])
    else:
        text = payload.encode(lockmod.to_dict(lock), key)
        size_warning = payload.check_carriable(text)
        if size_warning:
            warnings.append(size_warning)
    for warning in warnings:
        log.warning(warning)
    files = sum(len(p.files) for p in lock.pins)
    log.emit("info", f"locked {len(lock.packages)} packages, {len(lock.pins)} pins ({files} files) for "
             f"{lockmod.describe_targets(lock.targets)} ({log.elapsed():.2f} s)")
    if args.format in ("json", "pylock"):
        write_output(args.output or default_out, out.encode("utf-8"), log)
        return 0
    if args.format == "b64":
        out = text + "\n"
    elif args.format == "env":
        out = f"{contract.LOCK_B64}={text}\n"
    elif args.format == "docker":
        out = f"-e {contract.LOCK_B64}={text}\n"
    else:
        from hpm_boot.compose import k8s

        out = k8s.manifests(text, name=args.name, image=args.image, plan=plan,
                            init_container=args.init_container, entrypoint=args.entrypoint)
    write_output(args.output or "-", out.encode(), log)
    return 0


def _signing_key(args: argparse.Namespace, environ: Environ) -> bytes | None:
    """--sign-key-file, else HPM_LOCK_KEY / HPM_LOCK_KEY_FILE, else None (unsigned)."""
    from hpm_boot import payload

    if args.sign_key_file == "":
        raise UsageError("--sign-key-file is empty: give it a file path")
    if args.sign_key_file is not None:
        return payload.read_key_file(args.sign_key_file, f"--sign-key-file {args.sign_key_file}")
    return payload.read_key(environ)


def _check_writable_output(dest: str) -> None:
    """73 before git and uv run, not after, when the lock cannot be written where asked."""
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
    from hpm_boot import payload
    from hpm_boot.compose import lock as lockmod

    path = args.output or DEFAULT_FILE
    if path == "-" or not Path(path).is_file():
        raise NotFoundError(f"no lock at {path} to check", "make one with `hpm lock` (-o names the file)")
    lock = lockmod.from_dict(payload.load_file(path, None, path)[0], path)
    stale = []
    if lock.plan_digest != lockmod.plan_digest(plan):
        stale.append("the registry or the selection changed since it was made")
    have_versions = sorted({t.python_version for t in lock.targets})
    have_platforms = [t.python_platform for t in lock.targets]
    want_versions = sorted(set(args.python_version)) if args.python_version else None
    if want_versions is not None and have_versions != want_versions:
        stale.append(f"it was made for --python-version {', '.join(have_versions)}, "
                     f"not {', '.join(want_versions)}")
    if args.python_platform is not None and list(dict.fromkeys(args.python_platform)) != have_platforms:
        stale.append(f"it was made for --python-platform {', '.join(map(str, have_platforms))}, "
                     f"not {', '.join(args.python_platform)}")
    if stale:
        log.emit("error", f"{path} is out of date: {'; '.join(stale)}; run `hpm lock` again")
        return 1
    print(f"{path} is up to date ({len(lock.packages)} packages, {len(lock.pins)} pins)")
    return 0

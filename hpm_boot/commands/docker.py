"""``hpm docker run``: from the registry to a running container in one command.

    hpm docker run [HPM OPTIONS] --image IMAGE [ENGINE ARGS...] [-- CMD...]

Resolves and locks the current selection (as ``hpm lock`` does) for the image's Python,
then execs ``ENGINE run ENGINE-ARGS -e HPM_LOCK_B64 IMAGE CMD``: the payload travels in
the engine's environment (``-e NAME`` without a value copies it from there), never on a
command line that ``ps`` shows. The engine's exit code is hpm's.

HPM OPTIONS are hpm's long options (``--with``, ``--group``, ``--provide``,
``--registry``, ``--mode``, ``--no-defaults``, ``--engine``, ``--image``, ``--lock``,
``--python-version``, ``--python-platform``, ``--entrypoint``, ``--find-links``,
``--index-url``, ``--no-index``, ``--offline``, ``--dry-run``), anywhere before ``--``;
everything else before ``--`` is passed to the engine as it is (short options always
are: ``-p 8080:80`` publishes a port, ``-v``, ``-e``, ``-it`` ...). See docs/containers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from hpm_boot import contract
from hpm_boot.commands._options import (
    add_installer_options,
    add_selection,
    add_target_options,
    installer_options,
    load_plan,
)
from hpm_boot.errors import DataError, InstallerMissingError, NotFoundError, UsageError

if TYPE_CHECKING:
    from hpm_boot.log import Log

ENGINES = ("docker", "podman")
#: Asked of the image: its Python, machine and C library (for the lock's target).
PROBE = ("import platform,sys;print('%d.%d' % sys.version_info[:2], platform.machine(), "
         "*(platform.libc_ver()[0:2] or ('', '')))")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    own_options(parser)
    add_installer_options(parser)
    parser.add_argument("words", nargs=argparse.REMAINDER, metavar="run [ENGINE ARGS...] [-- CMD...]",
                        help="`run`, then arguments for the engine's run, then -- and the command")


def own_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES,
                        help="container engine (default: HPM_ENGINE, else docker or podman, "
                        "whichever is on PATH)")
    parser.add_argument("--image", metavar="IMAGE", help="the image to run (default: HPM_IMAGE)")
    parser.add_argument("--lock", metavar="FILE",
                        help="inject this lock (JSON or payload) instead of locking")
    add_target_options(parser, "the image's, asked of it")
    parser.add_argument("--entrypoint", dest="hpm_entrypoint", metavar="NAME|PKG:NAME",
                        help="run a manifest entrypoint (hpm run --entrypoint NAME) "
                        "instead of the image's CMD")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the engine command (without the payload) instead of running it")


def _hpm_long_options() -> dict[str, bool]:
    """hpm's long options that may appear after `run`: name -> takes a value."""
    p = argparse.ArgumentParser(add_help=False)
    add_selection(p)
    own_options(p)
    add_installer_options(p)
    out: dict[str, bool] = {}
    for action in p._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                out[opt] = action.nargs != 0
    return out


def split_words(words: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """``run ...`` -> (hpm options, engine arguments, command after ``--``)."""
    words = list(words)
    if words[:1] == ["--"]:
        words = words[1:]
    if not words or words[0] != "run":
        raise UsageError("expected `hpm docker run [OPTIONS] --image IMAGE [ENGINE ARGS] [-- CMD...]`",
                         "the only docker subcommand is run")
    known = _hpm_long_options()
    hpm: list[str] = []
    engine: list[str] = []
    cmd: list[str] = []
    i, rest = 0, words[1:]
    while i < len(rest):
        word = rest[i]
        if word == "--":
            cmd = rest[i + 1 :]
            break
        name = word.partition("=")[0]
        if name in known:
            hpm.append(word)
            if known[name] and "=" not in word:
                if i + 1 >= len(rest):
                    raise UsageError(f"{word} needs a value")
                hpm.append(rest[i + 1])
                i += 1
        else:
            engine.append(word)
        i += 1
    return hpm, engine, cmd


def find_engine(choice: str | None, environ: Mapping[str, str]) -> str:
    name = choice or environ.get(contract.ENGINE) or ""
    if name and name not in ENGINES:
        raise UsageError(f"{contract.ENGINE}={name!r}: expected one of {', '.join(ENGINES)}")
    for candidate in [name] if name else list(ENGINES):
        found = shutil.which(candidate, path=environ.get("PATH"))
        if found:
            return found
    raise InstallerMissingError(
        f"no container engine: {name or ' and '.join(ENGINES)} not found on PATH",
        "install Docker or Podman, or choose one with --engine / HPM_ENGINE")


def _engine_output(argv: list[str], what: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallerMissingError(f"{what}: {shlex.join(argv)} failed: {exc}") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        if "no such image" in out.stderr.lower() or "image not known" in out.stderr.lower() \
                or "unable to find" in out.stderr.lower():
            raise NotFoundError(f"{what}: {last}", f"$ {shlex.join(argv)}\n{out.stderr.strip()}")
        raise InstallerMissingError(f"{what}: {last}", f"$ {shlex.join(argv)}\n{out.stderr.strip()}")
    return out.stdout


def image_target(engine: str, image: str) -> tuple[str, str | None]:
    """(python version, uv platform or None) of the image, by running its python3 once."""
    out = _engine_output([engine, "run", "--rm", "--network=none", "--entrypoint", "python3", image,
                          "-c", PROBE], f"asking {image} for its Python")
    fields = out.split()
    if not fields or not fields[0].startswith("3."):
        raise DataError(f"{image}: unexpected answer about its Python: {out.strip()[:200]!r}",
                        "give --python-version X.Y")
    return fields[0], uv_platform(*[*fields[1:4], "", "", ""][:3])


def uv_platform(machine: str, libc: str, libc_version: str) -> str | None:
    """uv's ``--python-platform`` name for a Linux image, or None when unknown."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
    if arch is None:
        return None
    from hpm_boot.platforms import host_platform_name

    if libc == "glibc":
        try:
            int(libc_version.split(".")[1])
        except (IndexError, ValueError):
            return None
        return host_platform_name(("linux", arch, "glibc", libc_version))  # the nearest level uv names
    if not libc:  # platform.libc_ver() finds nothing on musl
        return f"{arch}-unknown-linux-musl"
    return None


def image_entrypoint(engine: str, image: str) -> list[str]:
    out = _engine_output([engine, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", image],
                         f"inspecting {image}")
    try:
        value = json.loads(out.strip() or "null")
    except ValueError:
        value = None
    return [str(v) for v in value] if isinstance(value, list) else []


def entrypoint_args(entrypoint: Sequence[str], name: str, image: str) -> list[str]:
    """The image's ``... hpm.pyz run --`` ENTRYPOINT turned into ``... run --entrypoint NAME``."""
    if "run" not in entrypoint:
        raise UsageError(f"--entrypoint {name}: the ENTRYPOINT of {image} is not `hpm run`: "
                         f"{json.dumps(list(entrypoint))}",
                         'expected e.g. ["python3", "/opt/hpm/hpm.pyz", "run", "--"] (docker/Dockerfile)')
    cut = list(entrypoint).index("run") + 1
    return [*entrypoint[:cut], "--entrypoint", name]


def make_payload(args: argparse.Namespace, environ: Mapping[str, str], engine: str, image: str,
                 log: Log) -> str:
    from hpm_boot import payload

    key = payload.read_key(environ)
    if args.lock:
        # the key (if any) signs what is sent; the file itself is read as the user's own
        loaded = payload.load_file(args.lock, None, f"--lock {args.lock}")
        data = loaded[0]
        log.info(f"lock from {loaded[1]}")
    else:
        from hpm_boot.compose import lock as lockmod

        plan = load_plan(args, environ, log)
        version, platform = args.python_version, args.python_platform
        if not version:
            version, found = image_target(engine, image)
            platform = platform or found
            log.info(f"{image}: Python {version}{' ' + found if found else ''}")
        target = lockmod.default_target(version, platform)
        lock = lockmod.make_lock(plan, target, uv_args=installer_options(args).uv_args())
        for warning in lockmod.lock_warnings(lock):
            log.warning(warning)
        data = lockmod.to_dict(lock)
        log.info(f"locked {len(lock.packages)} packages, {len(lock.pins)} pins for "
                 f"{lockmod.describe_targets(lock.targets)} ({log.elapsed():.2f} s)")
    text = payload.encode(data, key)
    warning = payload.check_carriable(text)
    if warning:
        log.warning(warning)
    return text


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from hpm_boot.log import Log

    hpm_words, engine_args, cmd = split_words(args.words)
    if hpm_words:  # hpm options given after `run`: parse them onto the same namespace
        p = argparse.ArgumentParser(prog="hpm docker run", add_help=False, allow_abbrev=False)
        add_selection(p)
        own_options(p)
        add_installer_options(p)
        try:
            p.parse_args(hpm_words, namespace=args)
        except SystemExit as exc:
            return int(exc.code or 2)
    log = Log(environ)
    image = args.image or environ.get(contract.IMAGE)
    if not image:
        raise UsageError("no image: give --image IMAGE (or set HPM_IMAGE)")
    engine = find_engine(args.engine, environ)
    text = make_payload(args, environ, engine, image, log)
    argv = [os.path.basename(engine), "run", *engine_args, "-e", contract.LOCK_B64]
    if args.hpm_entrypoint:
        new = entrypoint_args(image_entrypoint(engine, image), args.hpm_entrypoint, image)
        argv += ["--entrypoint", new[0], image, *new[1:], *(["--", *cmd] if cmd else [])]
    else:
        argv += [image, *cmd]
    if args.dry_run:
        print(f"{contract.LOCK_B64}=<{len(text)} bytes> {shlex.join(argv)}")
        return 0
    dropped = (contract.LOCK_KEY, contract.LOCK_KEY_FILE, contract.LOCK_FILE)
    child = {k: v for k, v in environ.items() if k not in dropped}
    child[contract.LOCK_B64] = text
    log.info(f"exec {shlex.join(argv)} ({contract.LOCK_B64}: {len(text)} bytes, in the environment)")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(engine, argv, child)
    except OSError as exc:
        raise InstallerMissingError(f"cannot run {engine}: {exc.strerror}") from None
    return 0  # not reached

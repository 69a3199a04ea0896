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
from typing import TYPE_CHECKING, NoReturn

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


class _WordsParser(argparse.ArgumentParser):
    """The options after ``run``: a bad one is hpm's one-line usage error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"hpm docker run: {message}", "hpm docker run --help lists the options")


def words_parser() -> argparse.ArgumentParser:
    """hpm's options of ``hpm docker run``: what may follow ``run``, and its --help."""
    p = _WordsParser(
        prog="hpm docker run", add_help=False, allow_abbrev=False,
        usage="hpm docker run [HPM OPTIONS] --image IMAGE [ENGINE ARGS...] [-- CMD...]",
        description="Lock the selection for the image's Python and run the image with the lock "
        "in HPM_LOCK_B64 (docs/containers.md).",
        epilog="Every other argument before -- goes to the engine's `run` unchanged (short options "
        "always do: -p, -v, -e, -it).")
    add_selection(p)
    own_options(p)
    add_installer_options(p)
    return p


def _long_options(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """``parser``'s long options: name -> takes a value."""
    out: dict[str, bool] = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                out[opt] = action.nargs != 0
    return out


def split_words(words: Sequence[str],
                parser: argparse.ArgumentParser | None = None) -> tuple[list[str], list[str], list[str]]:
    """``run ...`` -> (hpm options, engine arguments, command after ``--``); hpm's options
    are those of ``parser`` (default ``words_parser()``)."""
    words = list(words)
    if words[:1] == ["--"]:
        words = words[1:]
    if not words or words[0] != "run":
        raise UsageError("expected `hpm docker run [OPTIONS] --image IMAGE [ENGINE ARGS] [-- CMD...]`",
                         "the only docker subcommand is run")
    known = _long_options(parser or words_parser())
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
        last = engine_cause(out.stderr) or f"exit {out.returncode}"
        if "no such image" in out.stderr.lower() or "image not known" in out.stderr.lower() \
                or "unable to find" in out.stderr.lower():
            raise NotFoundError(f"{what}: {last}", f"$ {shlex.join(argv)}\n{out.stderr.strip()}")
        raise InstallerMissingError(f"{what}: {last}", f"$ {shlex.join(argv)}\n{out.stderr.strip()}")
    return out.stdout


def engine_cause(stderr: str) -> str:
    """The line of an engine's error output that names the cause.

    docker's client prints the cause first and ``Run 'docker run --help' for more
    information`` after it (also when no daemon is running); podman prints ``Error: ...``.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    causes = [line for line in lines if not (line.startswith("Run '") and "--help" in line)]
    errors = [line for line in causes if "error" in line.lower() or "cannot connect" in line.lower()]
    return (errors or causes or lines or [""])[0]


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
        info, warnings = lockmod.registry_notes(plan, lock)
        for line in info:
            log.info(line)
        for warning in warnings + lockmod.lock_warnings(lock):
            log.warning(warning)
        data = lockmod.to_dict(lock)
        log.info(f"locked {len(lock.packages)} packages, {len(lock.pins)} pins for "
                 f"{lockmod.describe_targets(lock.targets)} ({log.elapsed():.2f} s)")
    return payload.encode(data, key)


def wants_help(words: Sequence[str]) -> bool:
    """``hpm docker run ... --help`` (before ``--``): hpm's help, not the engine's."""
    before = list(words)[: list(words).index("--")] if "--" in words else list(words)
    return any(w in ("-h", "--help") for w in before)


#: where ``hpm docker run`` mounts a lock too large for the environment
MOUNTED_LOCK = "/etc/hpm/lock.hpm1"


def remote_engine(engine: str, environ: Mapping[str, str]) -> str | None:
    """Why ``engine`` may not see this machine's files (a remote daemon, a podman
    connection), or None for a local one, which can bind-mount a file from here."""
    name = os.path.basename(engine)
    if name.startswith("podman"):
        for var in ("CONTAINER_HOST", "CONTAINER_CONNECTION"):
            value = environ.get(var, "")
            if value and not value.startswith("unix://"):
                return f"{var}={value}"
        return "podman-remote" if name == "podman-remote" else None
    host = environ.get("DOCKER_HOST", "")
    if host and not host.startswith(("unix://", "npipe://")):
        return f"DOCKER_HOST={host}"
    if not host:
        try:  # the current context may point elsewhere (docker context use ...)
            out = subprocess.run([engine, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
                                 capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = out.stdout.strip() if out.returncode == 0 else ""
        if found and not found.startswith(("unix://", "npipe://")):
            return f"docker context endpoint {found}"
    return None


def lock_file_for_engine(text: str, environ: Mapping[str, str], write: bool = True) -> str:
    """The payload as a file to bind-mount, named by its content (the same lock, the same
    file; a restarted container finds it again). Under the user's cache directory, which
    Docker Desktop and podman machine share with their VM by default."""
    import hashlib

    from hpm_boot.fsutil import write_atomic

    home = environ.get("HOME") or os.path.expanduser("~")
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    directory = os.path.join(cache, "hpm", "docker-locks")
    path = os.path.join(directory, f"lock-{hashlib.sha256(text.encode()).hexdigest()[:24]}.hpm1")
    if not write:
        return path
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.path.isfile(path):
            write_atomic(path, text.encode())
        os.chmod(path, 0o644)  # read by the container's user, whoever that is
    except OSError as exc:
        from hpm_boot.errors import NotWritableError

        raise NotWritableError(f"cannot write the lock file to mount at {path}: {exc.strerror}",
                               "set XDG_CACHE_HOME to a writable directory") from None
    return path


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from hpm_boot.log import Log

    parser = words_parser()
    if wants_help(args.words):
        parser.print_help()
        return 0
    hpm_words, engine_args, cmd = split_words(args.words, parser)
    if hpm_words:  # hpm options given after `run`: parse them onto the same namespace
        parser.parse_args(hpm_words, namespace=args)
    log = Log(environ)
    image = args.image or environ.get(contract.IMAGE)
    if not image:
        raise UsageError("no image: give --image IMAGE (or set HPM_IMAGE)")
    engine = find_engine(args.engine, environ)
    text = make_payload(args, environ, engine, image, log)
    from hpm_boot import payload

    mounted = None
    if len(text) > payload.MAX_BYTES:  # too large for the environment: a file, if the engine sees ours
        remote = remote_engine(engine, environ)
        if remote:
            try:
                payload.check_carriable(text)
            except DataError as exc:
                raise DataError(f"{exc.message}; the engine is remote ({remote}), so hpm cannot mount "
                                "it as a file from here", exc.details) from None
        mounted = lock_file_for_engine(text, environ, write=not args.dry_run)
        log.info(f"the lock payload is {len(text) // 1024} KiB, above the {payload.MAX_BYTES // 1024} KiB "
                 f"an environment variable carries: mounting {mounted} as {MOUNTED_LOCK} "
                 f"({contract.LOCK_FILE})")
        lock_args = ["-v", f"{mounted}:{MOUNTED_LOCK}:ro", "-e", f"{contract.LOCK_FILE}={MOUNTED_LOCK}"]
    else:
        warning = payload.size_check(text)
        if warning:
            log.warning(warning)
        lock_args = ["-e", contract.LOCK_B64]
    argv = [os.path.basename(engine), "run", *engine_args, *lock_args]
    if args.hpm_entrypoint:
        new = entrypoint_args(image_entrypoint(engine, image), args.hpm_entrypoint, image)
        argv += ["--entrypoint", new[0], image, *new[1:], *(["--", *cmd] if cmd else [])]
    else:
        argv += [image, *cmd]
    if args.dry_run:
        print(shlex.join(argv) if mounted else f"{contract.LOCK_B64}=<{len(text)} bytes> {shlex.join(argv)}")
        return 0
    dropped = (contract.LOCK_KEY, contract.LOCK_KEY_FILE, contract.LOCK_FILE, contract.LOCK_B64)
    child = {k: v for k, v in environ.items() if k not in dropped}
    if mounted is None:
        child[contract.LOCK_B64] = text
    where = (f"{contract.LOCK_FILE}: {mounted}" if mounted
             else f"{contract.LOCK_B64}: {len(text)} bytes, in the environment")
    log.info(f"exec {shlex.join(argv)} ({where})")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(engine, argv, child)
    except OSError as exc:
        raise InstallerMissingError(f"cannot run {engine}: {exc.strerror}") from None
    return 0  # not reached

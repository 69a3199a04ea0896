"""Lock -> installer transactions (uv, pip, conda), run with signals forwarded.

One transaction per manager, in the order conda, uv, pip: conda brings binary
libraries, uv installs the pinned closure with ``--no-deps`` (the lock is already
complete), pip takes the packages whose manifest asks for it. Nothing starts when
the environment already satisfies the lock.
"""

from __future__ import annotations

import os
import sys
import time

from hpm_boot import contract, uvbin
from hpm_boot.errors import (
    InstallerFailedError,
    InstallerMissingError,
    Interrupted,
    NotWritableError,
)
from hpm_boot.fsutil import nearest_existing
from hpm_boot.log import mask_credentials
from hpm_boot.platforms import check_target
from hpm_boot.target import Environment, canonical_name, file_path, missing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from hpm_boot.log import Log

#: How uv says that --offline kept it from something (uv 0.13): a registry package,
#: a URL or a git commit. Its cache path (~/.cache/uv/...) is in most failures, so
#: "cache" alone says nothing.
_OFFLINE_ERRORS = ("network was disabled", "network connectivity is disabled",
                   "was not found in the cache")
GRACE_SECONDS = 5  # after forwarding SIGTERM/SIGINT, how long the installer gets to stop
_MACHINES = {"x86_64": ("x86_64", "amd64"), "aarch64": ("aarch64", "arm64"), "arm64": ("aarch64", "arm64")}


class InstallerOptions:
    """Where packages come from, passed to every installer in its own spelling."""

    __slots__ = ("extra_env", "find_links", "index_url", "no_index", "offline", "uv")

    def __init__(self, find_links: Sequence[str] = (), index_url: str | None = None,
                 no_index: bool = False, offline: bool = False, uv: str | None = None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.find_links = tuple(find_links)
        self.index_url = index_url
        self.no_index = no_index
        self.offline = offline
        self.uv = uv  # an explicit uv binary (else uvbin.find_uv)
        self.extra_env = dict(extra_env or {})

    def uv_args(self) -> list[str]:
        args = [a for link in self.find_links for a in ("--find-links", link)]
        if self.index_url:
            args += ["--index-url", self.index_url]
        if self.no_index:
            args.append("--no-index")
        if self.offline:
            args.append("--offline")
        return args

    def pip_args(self) -> list[str]:
        args = [a for link in self.find_links for a in ("--find-links", link)]
        if self.index_url:
            args += ["--index-url", self.index_url]
        if self.no_index or self.offline:
            args.append("--no-index")
        return args


# ---------------------------------------------------------------- target environment


def prepare_environment(environ: Mapping[str, str], python: str | None, uv: str | None,
                        log: Log) -> Environment:
    """The environment to install into: HPM_VENV (made if missing), ``--python``, or hpm's own.

    ``uv`` is needed only to create HPM_VENV; None finds it then (HPM_UV, PATH, ``uv`` package).
    """
    venv = environ.get(contract.VENV)
    if venv:
        return _ensure_venv(venv, python or sys.executable, uv, environ, log)
    # abspath, not realpath: every venv's bin/python links to the same base interpreter
    if python and os.path.abspath(python) != os.path.abspath(sys.executable):
        return describe_interpreter(python)
    return Environment.current()


def _ensure_venv(path: str, python: str, uv: str | None, environ: Mapping[str, str],
                 log: Log) -> Environment:
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotWritableError(f"HPM_VENV={path} is a file, not a directory",
                               "point HPM_VENV at a directory on a writable volume")
    existing = Environment.of_venv(path)
    if existing is not None:
        return existing
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, "pyvenv.cfg")):
        raise NotWritableError(f"HPM_VENV={path} is a non-empty directory that is not a virtual environment",
                               "point HPM_VENV at an empty or missing directory, or at an existing venv")
    parent = nearest_existing(os.path.abspath(path))  # uv venv makes the missing directories
    if not os.access(parent, os.W_OK):
        raise NotWritableError(f"HPM_VENV={path}: {parent} is not writable by uid {os.getuid()}",
                               "mount a writable volume there")
    uv = uv or uvbin.find_uv(environ)
    child_environ = {k: v for k, v in environ.items() if k != "VIRTUAL_ENV"}
    lines: list[str] = []
    code, _signum, took = run_process([uv, "venv", "--quiet", "--python", python, path], child_environ,
                                      lines.append, "uv")
    if code != 0:
        text = "\n".join(lines).strip()
        cause = lines[0].removeprefix("error: ") if lines else f"exit {code}"
        unwritable = "ermission denied" in text or "Read-only" in text
        error = NotWritableError if unwritable else InstallerFailedError
        raise error(f"uv venv {path} failed: {cause}", text)
    log.info(f"created virtual environment {path} ({took:.2f} s)", installer_seconds=round(took, 4))
    log.debug(f"uv exited 0 after {took:.4f} s")
    made = Environment.of_venv(path)
    assert made is not None
    return made


def describe_interpreter(python: str) -> Environment:
    """The environment of another interpreter (``--python``), asked of it in one process."""
    code = ("import sys,sysconfig,json;print(json.dumps([sys.executable,'%d.%d'%sys.version_info[:2],"
            "sorted({sysconfig.get_path('purelib'),sysconfig.get_path('platlib')}),sys.prefix!=sys.base_prefix,"
            "sys.prefix]))")
    import subprocess  # not on the cold path: only for --python

    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, PermissionError):
        raise InstallerMissingError(f"--python {python}: no such interpreter") from None
    if out.returncode != 0:
        raise InstallerMissingError(f"--python {python} does not run: {out.stderr.strip()[-200:]}")
    import json

    exe, version, sites, is_venv, prefix = json.loads(out.stdout)
    return Environment(exe, version, sites, venv=prefix if is_venv else None,
                            bin_dir=os.path.dirname(exe), prefix=prefix)


def externally_managed(target: Environment) -> bool:
    """PEP 668: the distribution asks pip and uv to keep off this interpreter."""
    if target.venv:
        return False
    if target.python == sys.executable:
        import sysconfig

        stdlib = sysconfig.get_path("stdlib")
    else:
        import subprocess

        out = subprocess.run([target.python, "-c", "import sysconfig;print(sysconfig.get_path('stdlib'))"],
                             capture_output=True, text=True)
        stdlib = out.stdout.strip()
    return bool(stdlib) and os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def check_writable(target: Environment) -> None:
    """Exit 73 with a hint before an installer fails on a read-only target."""
    if target.python == sys.executable:
        import sysconfig

        site: str | None = sysconfig.get_path("purelib")
    else:
        site = target.site_dirs[0] if target.site_dirs else None
    if site is None:
        return
    probe = nearest_existing(site)
    if not os.access(probe, os.W_OK):
        hint = ("set HPM_VENV=/path/on/a/writable/volume to install into a virtual environment there "
                "(non-root users, read-only root filesystems)")
        if target.venv and target.python != sys.executable:
            hint = f"give uid {os.getuid()} write access to {target.venv}, or {hint}"
        raise NotWritableError(f"cannot install into {site}: not writable by uid {os.getuid()}", hint)


# ---------------------------------------------------------------- transactions


class Transaction:
    """One installer run: its argv, and the requirement lines it reads (``-r FILE``)."""

    __slots__ = ("argv", "manager", "requirements")

    def __init__(self, manager: str, argv: list[str], requirements: list[str]) -> None:
        self.manager = manager
        self.argv = argv
        self.requirements = requirements

    def describe(self) -> str:
        return f"{self.manager}: {len(self.requirements)} requirement(s)"


def pin_line(pin: Mapping[str, Any]) -> str:
    if pin.get("editable"):
        line = f"-e {pin['url']}"
    elif pin.get("url"):
        line = f"{pin['name']} @ {pin['url']}"
    else:
        line = f"{pin['name']}=={pin['version']}"
    if pin.get("markers"):
        line += f" ; {pin['markers']}"
    return line + "".join(f" --hash={h}" for h in pin_hashes(pin))


def pin_hashes(pin: Mapping[str, Any]) -> list[str]:
    """The hashes a pin may be installed from: its files' (lock version 2), else its own."""
    files = pin.get("files")
    return [f["hash"] for f in files] if files else list(pin.get("hashes", []))


def transactions(lock: Mapping[str, Any], target: Environment, options: InstallerOptions,
                 environ: Mapping[str, str], req_dir: str) -> list[Transaction]:
    """The installer commands for ``lock``, one per manager, conda first."""
    packages = lock.get("packages", [])
    # pins are named by distribution, which a package names when it is not its own name
    pip_names = {p.get("distribution") or p["name"] for p in packages if p.get("manager") == "pip"}
    out: list[Transaction] = []
    conda = [p for p in packages if p.get("manager") == "conda"]
    if conda:
        channels = sorted({c for p in conda for c in p.get("channels", [])})
        prefix = target.prefix
        specs = [p["requirement"] for p in conda]
        argv = [uvbin.find_conda(environ), "install", "--yes", "--prefix", prefix,
                *[a for c in channels for a in ("--channel", c)], *specs]
        out.append(Transaction("conda", argv, specs))
    pins = lock.get("pins", [])
    uv_pins = [p for p in pins if p["name"] not in pip_names]
    pip_pins = [p for p in pins if p["name"] in pip_names]
    # PEP 668 asked once: for another interpreter, it takes a process
    breaks = ["--break-system-packages"] if (uv_pins or pip_pins) and externally_managed(target) else []
    if uv_pins:
        lines = [pin_line(p) for p in uv_pins]
        file = _write_lines(os.path.join(req_dir, "uv-requirements.txt"), lines)
        uv = options.uv or uvbin.find_uv(environ)
        argv = [uv, "pip", "install", "--python", target.python, "--no-deps", "-r", file,
                *options.uv_args()]
        if not (options.no_index or options.offline):
            # a package's own index, searched before the default one (uv's first-index
            # strategy): a same-named package elsewhere is never taken instead, and the
            # hashes hold the file to the one locked
            indexes = sorted({p["index"] for p in packages if p.get("index") and p.get("manager") == "uv"})
            argv += [a for i in indexes for a in ("--extra-index-url", i)]
        if all(pin_hashes(p) for p in uv_pins):
            argv.append("--require-hashes")
        platform = lock.get("target", {}).get("python_platform")
        if platform:  # the files the lock has hashes for: uv picks as it did when locking
            argv += ["--python-platform", platform]
        out.append(Transaction("uv", [*argv, *breaks], lines))
    if pip_pins:
        # pip turns hash checking on for every line as soon as one line has a hash, and
        # git or editable lines cannot have one: hashes go in only when all have them.
        hashed = all(pin_hashes(p) for p in pip_pins)
        lines = [pin_line(p if hashed else {**p, "hashes": [], "files": []}) for p in pip_pins]
        file = _write_lines(os.path.join(req_dir, "pip-requirements.txt"), lines)
        argv = [target.python, "-m", "pip", "install", "--no-deps", "--no-input",
                "--disable-pip-version-check", "-r", file, *options.pip_args()]
        if hashed:
            argv.append("--require-hashes")
        out.append(Transaction("pip", [*argv, *breaks], lines))
    return out


def run_process(argv: Sequence[str], environ: Mapping[str, str], on_line: Any,
                manager: str) -> tuple[int, int | None, float]:
    """Run ``argv`` in a process group of its own, stdout and stderr merged into
    ``on_line`` line by line; SIGTERM/SIGINT are passed on to the whole group (SIGKILL
    after ``GRACE_SECONDS``). Returns (exit code, signal received or None, wall time).

    ``os.posix_spawn`` and ``select`` rather than ``subprocess`` and a thread: this runs
    on every cold container start, and ``subprocess`` alone imports for ~9 ms.
    """
    import _signal
    import select

    started = time.perf_counter()
    received: list[int] = []
    child: list[int] = []  # the installer's pid (= its process group), once spawned
    # the handler wakes the loop at once (select would otherwise sleep out its timeout,
    # PEP 475, while a straggler of the group keeps the output pipe open)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)

    def stop(signum: int) -> None:
        _kill_group(child[0], signum)
        _signal.signal(_signal.SIGALRM, lambda *_: _kill_group(child[0], _signal.SIGKILL))
        _signal.alarm(GRACE_SECONDS)

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child:
            stop(signum)
        try:
            os.write(wake_write, b"!")
        except OSError:
            pass

    # handlers first: a signal that comes while the installer starts is not lost
    previous = {s: _signal.signal(s, forward) for s in (_signal.SIGTERM, _signal.SIGINT)}
    previous[_signal.SIGALRM] = _signal.getsignal(_signal.SIGALRM)  # ``stop`` may set it
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = os.posix_spawn(argv[0], list(argv), dict(environ), setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_DUP2, write_end, 2),
        ])
    except OSError as exc:
        for s, handler in previous.items():
            _signal.signal(s, handler)
        for fd in (read_end, wake_read, wake_write):
            os.close(fd)
        if isinstance(exc, FileNotFoundError):
            raise InstallerMissingError(f"{manager} not found: {argv[0]}",
                                        "install it, or point HPM_UV / PATH at it") from None
        # PermissionError, ENOEXEC (e.g. a uv built for another machine)
        raise InstallerMissingError(f"{manager} cannot be executed: {argv[0]}: {exc.strerror}") from None
    finally:
        os.close(write_end)
        os.close(devnull)
    child.append(pid)
    if received:  # came before the pid was known
        stop(received[0])
    status = None
    pending = b""
    try:
        while True:
            # once stopping, look for the installer's exit often: a straggler may hold the pipe
            ready, _, _ = select.select([read_end, wake_read], [], [], 0.01 if received else 0.2)
            if wake_read in ready:
                os.read(wake_read, 64)
                ready.remove(wake_read)
            chunk = os.read(read_end, 65536) if ready else b""
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
                continue
            if ready:  # end of output: every holder of the pipe is gone
                break
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
                if received or not select.select([read_end], [], [], 0.05)[0]:
                    break  # exited; a detached grandchild may keep the pipe open: don't wait for it
        if pending:
            on_line(pending.decode("utf-8", "replace"))
        if status is None:
            status = os.waitpid(pid, 0)[1]
        if received:
            _kill_group(pid, _signal.SIGKILL)  # stragglers of the group: no orphan survives hpm
    finally:
        _signal.alarm(0)
        for s, handler in previous.items():
            _signal.signal(s, handler)
        for fd in (read_end, wake_read, wake_write):
            os.close(fd)
    return os.waitstatus_to_exitcode(status), (received[0] if received else None), \
        time.perf_counter() - started


def run_installer(argv: Sequence[str], manager: str, environ: Mapping[str, str], log: Log,
                  pins: Sequence[Mapping[str, Any]] = ()) -> float:
    """Run one installer; its output stays visible (credentials masked); a failure is 74
    with the installer's own error line. Returns its wall time."""
    log.debug("running " + " ".join(argv))
    if manager == "pip":
        import subprocess  # rare: manifests with manager: pip

        if subprocess.run([argv[0], "-m", "pip", "--version"], capture_output=True,
                          stdin=subprocess.DEVNULL).returncode != 0:
            raise InstallerMissingError(f"a manifest asks for manager: pip, but {argv[0]} has no pip",
                                        "install pip into that interpreter (uv venv --seed), or use "
                                        "manager: uv")
    tail: list[str] = []

    def line(text: str) -> None:
        tail.append(text)
        del tail[:-40]
        log.installer(manager, text)

    code, signum, wall = run_process(argv, environ, line, manager)
    log.debug(f"{manager} exited {code} after {wall:.4f} s", installer_seconds=round(wall, 4))
    if signum is not None:
        raise Interrupted(signum)
    if code != 0:
        last = _cause(tail) or f"exit {code}"
        hint = ""
        text = "\n".join(tail)
        offline = "--offline" in argv or environ.get("UV_OFFLINE", "").lower() in ("1", "true", "yes")
        if offline and any(words in text for words in _OFFLINE_ERRORS):
            hint = " (offline: the package is neither in the installer's cache nor in --find-links)"
        mismatch = _hash_mismatch(text, pins, _find_links(argv))
        if mismatch:
            raise InstallerFailedError(mismatch, mask_credentials(text))
        raise InstallerFailedError(
            f"{manager} failed (exit {code}): {mask_credentials(last.strip())}{hint}",
            mask_credentials(text),
        )
    return wall


def _hash_mismatch(text: str, pins: Sequence[Mapping[str, Any]], find_links: Sequence[str]) -> str | None:
    """uv's "Hash mismatch for `name==version`" as one line naming the file: the one in a
    local ``--find-links`` directory whose hash uv computed, else the files the lock allows."""
    marker = "Hash mismatch for `"
    at = text.find(marker)
    if at < 0:
        return None
    what = text[at + len(marker):].partition("`")[0]
    name, _, version = what.partition("==")
    computed = text.partition("Computed:")[2].split()
    found = _file_with_hash(find_links, name, version, computed[0]) if computed else None
    if found:
        return f"hash mismatch: {found} is not the file locked for {what}; nothing was installed"
    files = [f.get("name", "?") for p in pins if p.get("name") == name and p.get("version") == version
             for f in p.get("files", [])]
    named = f" (the lock allows {', '.join(files)})" if files else ""
    return (f"hash mismatch: the file of {what} found at install is not the one locked{named}; "
            "nothing was installed")


def _find_links(argv: Sequence[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--find-links"]


def _file_with_hash(find_links: Sequence[str], name: str, version: str, want: str) -> str | None:
    import hashlib

    for link in find_links:
        directory = file_path(link)
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            dist, _, rest = entry.partition("-")
            if canonical_name(dist) != name or not rest.startswith((version + "-", version + ".tar")):
                continue
            path = os.path.join(directory, entry)
            try:
                with open(path, "rb") as f:
                    digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
            except OSError:
                continue
            if digest == want:
                return path
    return None


def _cause(lines: list[str]) -> str:
    """The installer's error line, with its first ``cause``/``Because`` line when it has one."""
    stripped = [t.strip() for t in lines]
    starts = [i for i, t in enumerate(stripped) if t.startswith(("error", "ERROR", "×"))]
    if not starts:
        return next((t for t in reversed(stripped) if t), "")
    first = starts[-1] if stripped[starts[-1]].startswith("ERROR") else starts[0]
    markers = ("cause:", "Because", "Caused by")
    causes = (t for t in stripped[first + 1:] if t.lstrip("╰─▶ ").startswith(markers))
    cause = next(causes, None)
    head = stripped[first]
    return f"{head}: {cause.lstrip('╰─▶ ').removeprefix('cause: ')}" if cause else head


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def install(lock: Mapping[str, Any], target: Environment, options: InstallerOptions,
            environ: Mapping[str, str], log: Log) -> int:
    """Make ``target`` satisfy ``lock``; returns how many packages were missing (0: nothing ran).

    Checks first and starts nothing when the environment is already right; refuses a lock
    for another Python or platform (78) and an unwritable target (73) before any installer
    runs; after the installers, checks again, so a half-done install is never a success.
    """
    lock = check_target(lock, target.python_version)
    lacking = missing(lock, target)
    if not lacking:
        log.info(f"{len(lock.get('pins', []))} packages already installed; nothing to do "
                 f"({log.elapsed():.2f} s)")
        return 0
    for why in lacking[:20]:
        log.debug(why)
    check_writable(target)
    started = time.perf_counter()
    child_environ = {**environ, **options.extra_env}
    child_environ.pop("VIRTUAL_ENV", None)
    installer_seconds = 0.0
    scratch = _scratch_dir(target)
    try:
        for txn in transactions(lock, target, options, environ, scratch):
            log.info(f"installing with {txn.describe()}")
            installer_seconds += run_installer(txn.argv, txn.manager, child_environ, log,
                                               lock.get("pins", []))
    finally:
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        os.rmdir(scratch)
    still = missing(lock, target)
    if still:
        raise InstallerFailedError(
            f"the installer finished but {len(still)} package(s) are still missing: {still[0]}",
            "\n".join(still),
        )
    total = time.perf_counter() - started
    log.info(f"installed {len(lacking)} packages in {total:.2f} s",
             installer_seconds=round(installer_seconds, 4))
    return len(lacking)


def _scratch_dir(target: Environment) -> str:
    """A new private directory for requirement files: in TMPDIR or /tmp, else in the
    target venv (read-only root filesystems may have no writable /tmp at all)."""
    places = [os.environ.get("TMPDIR"), "/tmp", "/var/tmp", target.venv]
    for place in places:
        if place and os.path.isdir(place) and os.access(place, os.W_OK | os.X_OK):
            path = os.path.join(place, f"hpm-{os.getpid()}-{os.urandom(6).hex()}")
            try:
                os.mkdir(path, 0o700)
                return path
            except OSError:
                continue
    raise NotWritableError("no writable directory for the installer's requirement files",
                           f"tried {', '.join(p for p in places if p)}; set TMPDIR or HPM_VENV")


def _write_lines(path: str, lines: list[str]) -> str:
    with open(path, "x", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path

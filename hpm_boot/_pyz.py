"""Runtime support of ``hpm.pyz`` for the CLI path (and ``hpm self-check``).

The pyz's generated ``__main__.py`` serves hpm_boot's start-path modules (this one among
them) from a raw region of the file, through its ``HotModules`` loader, and calls
``hpm_boot.__main__.main``: the warm start (``warmstart``) and the reused ephemeral
environment (``reuse``) need nothing else. Everything else (the other hpm_boot modules, pure
Python PyYAML and packaging, BUILD_INFO) is the "lib", a zip inside the pyz; the compiled
wheels (msgspec, PyYAML) are raw regions beside it. Only when ``main`` falls through to the
CLI does it call ``setup()``, which
unpacks the lib once into the cache (a memory file when no cache place is writable) and
puts it on ``sys.path``, and installs a ``sys.meta_path`` finder for msgspec.

Only when ``msgspec`` (or ``yaml``) is first imported does the finder pick the wheel that
matches this interpreter by its wheel tags, extract it once into the cache (keyed by the
wheel's sha256) and import it from there. Both unpackings are atomic renames under an
``flock``, so racing processes are safe. Standard library only, and cheap at import.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_loader = globals().get("__loader__")
#: Path of the running ``hpm.pyz``, or None when hpm runs from a source tree or a wheel.
PYZ: str | None = getattr(_loader, "pyz", None)
_BUILD_CMD = "python build_zipapp.py --platform {plat} --python {py}"
_DAMAGED = "the file {} is damaged ({}); download or build it again"
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def setup() -> None:
    """Make hpm's other modules, the vendored packages and msgspec importable (idempotent)."""
    if PYZ is None or any(isinstance(f, _WheelFinder) for f in sys.meta_path):
        return
    lib = lib_path()
    pyc = [f"{lib}/_pyc/{sys.implementation.cache_tag}"] if compiled() else []
    sys.path[:0] = [*pyc, f"{lib}/_vendor"]
    sys.modules["hpm_boot"].__path__ = [f"{place}/hpm_boot" for place in (*pyc, lib)]
    sys.meta_path.insert(0, _WheelFinder())


def compiled() -> bool:
    """Whether the pyz carries bytecode for this interpreter (and uses it)."""
    return bool(getattr(_loader, "bytecode", False))


def lib_path() -> str:
    """The pyz's lib zip as a file: found in a cache place, else unpacked there once."""
    if _loader.lib_path is None:  # the loader stands for the pyz: it keeps where its lib is
        _loader.lib_path = _unpack_lib()
    return _loader.lib_path


def _lib_data() -> bytes:
    try:
        return _loader.read(_loader.lib)
    except (OSError, ValueError) as exc:
        from hpm_boot.errors import DataError

        raise DataError(_DAMAGED.format(PYZ, f"its lib zip: {exc}")) from None


def _unpack_lib() -> str:
    size = sum(length for _, length in _loader.lib[1])

    def ready(place: str, path: str) -> bool:
        try:
            return os.stat(path).st_size == size
        except OSError:
            return False

    name = f"lib-{_loader.lib_key}.zip"
    path, problems = _in_cache("lib", name, ready, lambda tmp: _write(tmp, _lib_data()))
    if path is not None:
        return path
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        # nowhere to write (a read-only root without a writable /tmp): a memory file,
        # which zipimport opens by its /proc path; it closes at exec
        fd = os.memfd_create("hpm-lib")
        _write(fd, _lib_data())
        return f"/proc/self/fd/{fd}"
    from hpm_boot.errors import NotWritableError

    raise NotWritableError("no cache directory to unpack hpm.pyz into; set HPM_CACHE to a writable directory",
                           "\n".join(problems))


def _in_cache(sub: str, name: str, ready: Callable[[str, str], bool],
              make: Callable[[str], None]) -> tuple[str | None, list[str]]:
    """``<place>/<sub>/<name>``: the first that is ``ready(place, path)`` in any cache place
    (even a read-only one, e.g. made at image build time), else made once by ``make`` in
    the first usable place (see ``_once``). (None, why each place is unusable) when none is.
    The path returned is held (``hold``) until this process exits or execs."""
    places = cache_places()
    for _ in range(5):  # `hpm gc` removed it between our look and our lock: look again
        for place in places:
            path = os.path.join(place, sub, name)
            if ready(place, path) and hold(path):
                return path, []
        problems = []
        for place in places:
            problem = _problem(place, sub, probe=True)
            if problem is None:
                final = _once(os.path.join(place, sub, name), make)
                if hold(final):
                    return final, []
                break
            problems.append(f"{place}: {problem}")
        else:
            return None, problems
    return None, [f"{sub}/{name} was removed again and again while hpm started (hpm gc in a loop?)"]


def hold(final: str) -> bool:
    """``fsutil.hold`` on ``final.lock``, kept for the life of this process: ``hpm gc``
    removes ``final`` only under that lock, so what a running hpm uses stays. False when
    ``final`` went before the lock was ours (the caller looks again). Where no lock can
    be had (a read-only place without lock file, no ``fcntl``), nobody can remove it either."""
    from hpm_boot import fsutil

    try:
        fd = fsutil.hold(f"{final}.lock")
    except (OSError, ImportError):
        return os.path.exists(final)
    if fd is None:
        return False
    if os.path.exists(final):
        return True
    os.close(fd)
    return False


def _write(file: str | int, data: bytes) -> None:
    with open(file, "wb", closefd=isinstance(file, str)) as f:
        f.write(data)


def _once(final: str, make: Callable[[str], None]) -> str:
    """``final`` (a file or a directory) made by ``make(temporary name)`` and renamed into
    place, under an ``flock`` on ``final.lock``: racing processes make it once."""
    import shutil

    with open(f"{final}.lock", "a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # no flock (Windows): the atomic rename alone decides
            pass
        if os.path.exists(final):  # another process won the race
            return final
        tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}-{os.getpid()}")
        try:
            make(tmp)
            os.rename(tmp, final)
        except BaseException as exc:  # nothing half-made stays behind, whatever stopped it
            shutil.rmtree(tmp, ignore_errors=True)
            if os.path.isfile(tmp):
                os.unlink(tmp)
            if not (isinstance(exc, OSError) and os.path.exists(final)):
                raise
    return final


def build_info() -> dict[str, Any]:
    """What ``hpm --version`` shows: version, commit, dependency versions, wheels."""
    if PYZ is None:
        from hpm_boot import __version__

        return {"version": __version__, "commit": "unknown", "deps": {}, "wheels": []}
    import json

    return json.loads(_lib_importer().get_data("BUILD_INFO"))


def _lib_importer() -> Any:
    import zipimport

    return zipimport.zipimporter(lib_path())


# -- wheel tags (a small stdlib stand-in for packaging.tags) ----------------------------


def _glibc() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):
        return None


def _musl(arch: str) -> tuple[int, int] | None:
    import glob
    import re
    import subprocess

    for loader in sorted(glob.glob(f"/lib/ld-musl-{arch}.so.1") + glob.glob("/lib/ld-musl-*")):
        try:
            out = subprocess.run([loader], capture_output=True, text=True, timeout=10).stderr
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.search(r"Version (\d+)\.(\d+)", out)
        return (int(m.group(1)), int(m.group(2))) if m else (1, 2)
    return None


def mac_platforms(version: tuple[int, int], arch: str) -> list[str]:
    """The macOS platform tags of a Mac running ``version`` on ``arch`` (``arm64`` or
    ``x86_64``), best first: packaging.tags.mac_platforms' rule (every older release down
    to 11.0, and for x86_64 on to 10.4; the fat formats that contain ``arch``)."""
    formats = {"arm64": ["arm64", "universal2"],
               "x86_64": ["x86_64", "intel", "fat64", "fat32", "universal2", "universal"]}.get(arch, [arch])
    tags = []
    if version >= (11, 0):
        tags += [f"macosx_{major}_0_{f}" for major in range(version[0], 10, -1) for f in formats]
        if arch == "x86_64":
            tags += [f"macosx_10_{minor}_{f}" for minor in range(16, 3, -1) for f in formats]
        else:
            tags += [f"macosx_10_{minor}_universal2" for minor in range(16, 3, -1)]
    else:
        tags += [f"macosx_10_{minor}_{f}" for minor in range(version[1], 3, -1) for f in formats]
    return tags


def platform_tags() -> list[str]:
    """Platform tags this interpreter accepts, best first (manylinux/musllinux and macOS aware)."""
    import sysconfig

    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if plat.startswith("macosx_"):
        import platform

        release = platform.mac_ver()[0] or "11.0"
        major, minor = (int(x) for x in [*release.split("."), "0"][:2])
        if (major, minor) == (10, 16):  # the compatibility answer of an old SDK: a Big Sur or later
            major, minor = 11, 0
        return mac_platforms((major, minor), platform.machine())
    if not plat.startswith("linux_"):
        return [plat]
    arch = plat[len("linux_") :]
    if arch == "x86_64" and sys.maxsize <= 2**32:
        arch = "i686"
    tags: list[str] = []
    glibc = _glibc()
    if glibc:
        for minor in range(glibc[1], 4, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            tags += [f"{k}_{arch}" for k, v in _LEGACY.items() if v == (2, minor)]
    elif musl := _musl(arch):
        tags += [f"musllinux_{musl[0]}_{m}_{arch}" for m in range(musl[1], -1, -1)]
    return [*tags, plat]


def interpreter_tag() -> tuple[str, str]:
    """``("cp312", "cp312")`` style interpreter and ABI tags of the running Python."""
    impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, "py")
    py = f"{impl}{sys.version_info[0]}{sys.version_info[1]}"
    return py, py + getattr(sys, "abiflags", "")


def select_wheel(names: list[str], dist: str = "msgspec",
                 tags: tuple[str, str, list[str]] | None = None) -> str | None:
    """The file name in ``names`` that best fits this interpreter (or ``tags``: interpreter,
    ABI and platform tags, best first, as ``interpreter_tag``/``platform_tags`` give them), or None."""
    py, abi = tags[:2] if tags else interpreter_tag()
    plats = tags[2] if tags else platform_tags()
    minor = int(py[3:]) if py[3:].isdigit() else sys.version_info[1]
    stable = {f"cp3{m}" for m in range(2, minor + 1)} if abi == py else set()
    best: tuple[int, str] | None = None
    for name in names:
        parts = name[: -len(".whl")].split("-")
        if parts[0].lower().replace("_", "-") != dist or len(parts) not in (5, 6):
            continue
        pys, abis, wplats = (set(p.split(".")) for p in parts[-3:])
        if not ((py in pys and abi in abis) or (pys & stable and "abi3" in abis)):
            continue
        ranks = [plats.index(p) for p in wplats if p in plats]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), name)
    return best and best[1]


# -- the cache of extracted wheels ------------------------------------------------------


def cache_places() -> list[str]:
    """Where extracted wheels may live, in order of preference."""
    import tempfile

    from hpm_boot.contract import CACHE

    environ, join = os.environ, os.path.join
    places = [environ[CACHE]] if environ.get(CACHE) else []
    if environ.get("XDG_CACHE_HOME"):
        places.append(join(environ["XDG_CACHE_HOME"], "hpm"))
    if (home := os.path.expanduser("~")) != "~":
        places.append(join(home, ".cache", "hpm"))
    uid = os.getuid() if hasattr(os, "getuid") else 0
    try:
        tmp = tempfile.gettempdir()
    except OSError:  # no writable temp dir (docker --read-only without --tmpfs /tmp)
        return places
    return [*places, join(tmp, f"hpm-{uid}")]


def _problem(place: str, sub: str = "wheels", probe: bool = False) -> str | None:
    """Why ``place`` cannot hold ``sub`` (None: it can): unpacked wheels need a place
    where shared objects can be loaded, the lib zip only a writable one."""
    import tempfile

    try:
        if probe:
            os.makedirs(place, mode=0o700, exist_ok=True)
            os.makedirs(os.path.join(place, sub), mode=0o700, exist_ok=True)
        st = os.stat(place)
        uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
        if cache_places()[-1:] == [place] and (st.st_uid != uid or st.st_mode & 0o022):
            return "not owned by you or writable by others"  # in the shared temp dir
        noexec = hasattr(os, "statvfs") and os.statvfs(place).f_flag & getattr(os, "ST_NOEXEC", 0)
        if noexec and sub == "wheels":
            return "mounted noexec"
        if probe:
            fd, name = tempfile.mkstemp(dir=os.path.join(place, sub), prefix=".probe-")
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def place_state(place: str) -> str:
    """A cache place as ``hpm self-check`` shows it; looks, never writes."""
    if not os.path.lexists(place):
        from hpm_boot.fsutil import nearest_existing

        parent = nearest_existing(os.path.dirname(place))
        if os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
            return "absent; can be created"
        return f"absent; cannot be created ({parent} is not a writable directory)"
    if not os.path.isdir(place):
        return "not a directory"
    problem = _problem(place)
    if problem:
        return problem
    wheels = os.path.join(place, "wheels")
    try:
        count = sum(1 for n in os.listdir(wheels) if not n.startswith(".") and not n.endswith(".lock"))
    except OSError:
        count = 0
    writable = os.access(wheels if os.path.isdir(wheels) else place, os.W_OK | os.X_OK)
    return f"ok{'' if writable else ', read-only'}; {count} unpacked wheel(s)"


def first_usable_place() -> str | None:
    """Where an extraction would go now (a guess made without writing), or None."""
    for place in cache_places():
        state = place_state(place)
        if state == "absent; can be created" or (state.startswith("ok") and "read-only" not in state):
            return place
    return None


def _wheels() -> dict[str, dict[str, Any]]:
    return {w["file"]: w for w in build_info().get("wheels", [])}


def _key(wheel: dict[str, Any]) -> str:
    return "-".join([*wheel["file"].split("-")[:2], wheel["sha256"][:24]])


def own_cache_names() -> set[str]:
    """What this build unpacks into a cache place, as ``<sub>/<name>`` (``hpm gc`` keeps
    these): its lib zip and the directory of every wheel it carries. Empty outside a pyz."""
    if PYZ is None:
        return set()
    return {f"lib/lib-{_loader.lib_key}.zip", *(f"wheels/{_key(w)}" for w in _wheels().values())}


def extracted_dir(wheel: dict[str, Any]) -> str:
    """Directory holding the extracted ``wheel``: found in a cache place, or made there."""
    path, problems = _in_cache("wheels", _key(wheel),
                               lambda place, path: os.path.isdir(path) and _problem(place) is None,
                               lambda tmp: _unzip_wheel(wheel, tmp))  # fmt: skip
    if path is not None:
        return path
    from hpm_boot.errors import NotWritableError

    raise NotWritableError(
        f"no cache directory to unpack {wheel['file'].split('-')[0]} into; set HPM_CACHE to a writable, "
        "exec-allowed directory",
        "\n".join(problems),
    )


def _unzip_wheel(wheel: dict[str, Any], directory: str) -> None:
    import hashlib
    import io
    import marshal
    import zipfile

    try:
        data = _loader.read(marshal.loads(_loader.read(_loader.wheels))[wheel["file"]])
    except (OSError, ValueError, EOFError, TypeError, KeyError) as exc:
        from hpm_boot.errors import DataError

        raise DataError(_DAMAGED.format(PYZ, f"{wheel['file']}: {exc}")) from None
    if hashlib.sha256(data).hexdigest() != wheel["sha256"]:
        from hpm_boot.errors import DataError

        raise DataError(_DAMAGED.format(PYZ, f"{wheel['file']} fails its digest"))
    zipfile.ZipFile(io.BytesIO(data)).extractall(directory)


class _WheelFinder:
    """``sys.meta_path`` finder that serves msgspec, and PyYAML with its libyaml extension,
    carried as raw regions of the pyz. No PyYAML wheel for this interpreter (or no cache place
    that can load a shared object): the vendored pure-Python ``yaml`` in the lib serves."""

    def __init__(self) -> None:
        self.pending = {"msgspec", "yaml"}
        # the pyz's wheels and this interpreter's tags, found at the first import served
        # and kept for the second (on musl, the tags cost a run of the dynamic loader)
        self.found: tuple[dict[str, dict[str, Any]], tuple[str, str, list[str]]] | None = None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.pending:
            return None
        from importlib.machinery import PathFinder

        self.pending.discard(fullname)
        if not self.pending:
            sys.meta_path.remove(self)
        if self.found is None:
            self.found = _wheels(), (*interpreter_tag(), platform_tags())
        wheels, tags = self.found
        dist = "pyyaml" if fullname == "yaml" else fullname
        name = select_wheel(sorted(wheels), dist, tags)
        if name is None and fullname == "yaml":
            return None  # the vendored pure-Python yaml
        if name is None:
            from hpm_boot.errors import NotFoundError

            py, abi, plats = tags
            plat = plats[0]
            raise NotFoundError(
                f"this hpm.pyz has no msgspec wheel for {py}-{abi}-{plat}; build one with: "
                + _BUILD_CMD.format(plat=_short_platform(plat), py=f"{py[2]}.{py[3:]}"),
                "wheels in this pyz:\n  " + "\n  ".join(sorted(w for w in wheels if w.startswith("msgspec"))),
            )
        if fullname == "yaml":
            from hpm_boot.errors import HpmError

            try:
                directory = extracted_dir(wheels[name])
            except HpmError:  # nowhere to unpack it: pure Python is slower, not wrong
                return None
        else:
            directory = extracted_dir(wheels[name])
        sys.path.insert(0, directory)  # also makes its dist-info visible to importlib.metadata
        return PathFinder.find_spec(fullname, [directory])


def _short_platform(tag: str) -> str:
    """``manylinux_2_36_x86_64`` -> ``manylinux_x86_64`` (the builder's --platform)."""
    for kind in ("manylinux", "musllinux", "macosx"):
        if tag.startswith(kind):
            return f"{kind}_{tag.split('_', 3)[-1]}"
    return tag


def self_check_info() -> dict[str, Any]:
    """Interpreter, its wheel tags and the msgspec wheel chosen, for ``hpm self-check``
    (which looks at the cache places itself, with ``place_state``)."""
    py, abi = interpreter_tag()
    plats = platform_tags()
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "archive": PYZ,
        "lib": getattr(_loader, "lib_path", None),
        "interpreter": py,
        "abi": abi,
        "platform_tags": plats,
        "build": build_info(),
    }
    if PYZ is not None:
        wheels = _wheels()
        name = select_wheel(sorted(wheels), tags=(py, abi, plats))
        info["msgspec_wheel"] = name
        if name:
            dirs = [os.path.join(p, "wheels", _key(wheels[name])) for p in cache_places()]
            info["msgspec_dir"] = next((d for d in dirs if os.path.isdir(d)), None)
    return info

"""Build ``dist/hpm.pyz``: one reproducible file holding hpm and its dependencies.

Layout (docs/pyz.md has the why of each part), in file order::

    #!/usr/bin/env python3
    the lib zip              a complete zip of everything but the start path: BUILD_INFO,
                             hpm_boot's other modules, _pyc/<cache tag>/**.pyc,
                             _vendor/yaml, _vendor/packaging; hpm_boot._pyz unpacks it
                             into the cache on the CLI path
    compiled wheels          raw regions: msgspec and PyYAML, one per Python and platform,
                             and their index (LAYOUT["wheels"])
    start-path regions       raw bytes: the modules directly in hpm_boot/ (start_path_tiers),
                             two tiers, marshalled per cache tag (and as source), each
                             checked with a SipHash
    the small zip            what Python reads at every start: __main__.py (generated),
                             LAYOUT (where the lib and the regions are), _hpm_start.py and
                             <cache tag>/_hpm_start.pyc (hpm_boot/_start.py)

Between the parts and the lib's members, in no directory: tiny complete zips ("rescue
zips") whose __main__.py reports a damaged file. They sit at most ~56 KiB apart. When a
download or copy cuts the file short, its real end record is gone and Python's zipimport
falls back to the last end record within the final 64 KiB: a rescue zip, which says the
file is damaged and exits 65 instead of Python's "can't find '__main__' module". That is
also why wheels are stored in parts, and raw regions cut, through their own end-record
signatures. The archive comment (64 bytes) lets a file cut by at most 64 bytes run as
usual; a cut 65..86 bytes short, inside the main end record, is the one place where
Python's own message shows.

Reproducible: entries in a fixed order, timestamps from SOURCE_DATE_EPOCH (else the last
commit's time, else 1980-01-01), fixed modes, deflate level 9 (stored for wheels).
Two builds of one commit with the same wheels and zlib are byte-identical.

Usage: ``python build_zipapp.py [-o dist/hpm.pyz] [--wheels DIR] [--platform P]
[--python 3.12] [--bytecode X.Y|none] [--offline] [--download-only]``. See docs/pyz.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PINS = {"msgspec": "0.22.0", "PyYAML": "6.0.4", "packaging": "26.4"}
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
#: --platform name -> the platform tag asked of pip (pip also accepts older ones: for macOS
#: x86_64 every 10.x down to 10.4)
PLATFORMS = {
    "manylinux_x86_64": "manylinux_2_17_x86_64",
    "manylinux_aarch64": "manylinux_2_17_aarch64",
    "musllinux_x86_64": "musllinux_1_2_x86_64",
    "musllinux_aarch64": "musllinux_1_2_aarch64",
    "macosx_x86_64": "macosx_11_0_x86_64",
    "macosx_arm64": "macosx_11_0_arm64",
}
#: the distributions carried as compiled wheels, one per Python and platform: msgspec
#: (required), PyYAML (for its libyaml extension; the vendored pure-Python yaml/ is the
#: fallback where no wheel fits)
COMPILED = ("msgspec", "pyyaml")
#: the one PyYAML wheel whose pure-Python yaml/ package is vendored
YAML_WHEEL = ("3.12", "manylinux_x86_64")
#: what gets compiled bytecode (archive paths): hpm itself and the vendored packages
BYTECODE_OF = ("hpm_boot/", "_vendor/")
RESCUE_GAP = 56 * 1024  # < 64 KiB, the span zipimport searches for an end record
FILE_MODE = 0o100644
SHEBANG = b"#!/usr/bin/env python3\n"

#: The pyz's __main__.py. Python compiles it from source at every start, twice (runpy
#: asks zipimport for the file name, and zipimport compiles the module to answer, then
#: compiles it again for the code: ~1.5 M instructions a KB each time), so it only runs
#: ENTRY: the code compiled for this interpreter (LAYOUT["entry"], by magic number), else
#: ENTRY's source, ``_hpm_entry.py``, compiled once. ENTRY runs in __main__'s globals.
MAIN_STUB = """\
from importlib.util import MAGIC_NUMBER
from marshal import loads
try:
    L = loads(__loader__.get_data("LAYOUT"))
    c = loads(L["entry"][MAGIC_NUMBER])
except Exception:
    L, c = None, compile(__loader__.get_data("_hpm_entry.py"), "_hpm_entry.py", "exec", dont_inherit=True)
exec(c)
"""
#: What __main__.py runs: check the start code compiled for this interpreter (its SipHash
#: in LAYOUT["start"]) or compile its source, then run its ``start``; a damaged file is
#: exit 65 with one line. ``L`` is the LAYOUT __main__.py read (None: read it here).
ENTRY_PY = '''\
import sys
if sys.version_info < (3, 10):
    sys.exit("hpm: needs Python 3.10 or newer, this is " + sys.version.split()[0])
from _imp import source_hash
tag = sys.implementation.cache_tag
try:
    if L is None:
        L = loads(__loader__.get_data("LAYOUT"))
    magic, check = L["start"].get(tag, (b"", b""))
    if magic == MAGIC_NUMBER:
        code = __loader__.get_data(tag + "/_hpm_start.pyc")
        if source_hash({key}, code) != check:
            raise ValueError(tag + "/_hpm_start.pyc fails its check")
        code = loads(code[16:])
    else:
        code = compile(__loader__.get_data("_hpm_start.py"), "_hpm_start.py", "exec", dont_inherit=True)
except (OSError, ValueError, EOFError, TypeError, KeyError, SyntaxError) as exc:
    sys.stderr.write("hpm: the file %s is damaged (%s: %s); download or build it again\\n"
                     % (__loader__.archive, type(exc).__name__, exc))
    sys.exit(65)
start = {"__name__": "_hpm_start", "__loader__": __loader__}
exec(code, start)
sys.exit(start["start"](__loader__.archive, L))
'''
RESCUE_PY = (
    "import sys\nsys.stderr.write('hpm: the file %s is damaged (it ends too early: a cut-short"
    " download or copy); download or build it again\\n' % sys.argv[0])\nsys.exit(65)\n"
)


#: The start-path modules for one interpreter: (magic number, tiers), a tier being (its
#: modules, marshalled ``{module: (is_package, code or source)}``, its check: the SipHash
#: of ``_imp.source_hash`` with HASH_KEY, or a CRC-32 for the sources)
Hot = tuple[str, list[tuple[tuple[str, ...], bytes, bytes | int]]]


class BuildError(Exception):
    """A build step failed; the message says which and how to fix it."""


def start_path_tiers() -> tuple[tuple[str, ...], ...]:
    """hpm_boot's start-path modules, served from raw regions of the pyz, one region per
    tier, each read when one of its modules is first imported: the package's own rule
    (hpm_boot/__init__.py), read from the tree. Tier 1 is ``WARM_START``, what a warm
    ``run`` imports; tier 2 every other module directly in hpm_boot/ (installing, a
    reused ephemeral environment, ``_pyz``, which reaches everything else), but the
    start code (``_start.py``), which the pyz carries apart."""
    import ast

    init = ast.parse((ROOT / "hpm_boot" / "__init__.py").read_text())
    warm = next(ast.literal_eval(node.value) for node in init.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "WARM_START" for t in node.targets))
    flat = sorted(p.stem for p in (ROOT / "hpm_boot").glob("*.py") if p.name != "_start.py")
    unknown = sorted(set(warm) - set(flat))
    if unknown:
        raise BuildError(f"hpm_boot.WARM_START names modules that are not in hpm_boot/: {unknown}")
    return tuple(sorted(warm)), tuple(m for m in flat if m not in warm)


HOT = start_path_tiers()


# -- wheels -------------------------------------------------------------------------------


def _tags(path: Path) -> tuple[str, set[str], set[str], set[str]]:
    parts = path.name[: -len(".whl")].split("-")
    dist = parts[0].lower().replace("_", "-")
    return dist, *(set(p.split(".")) for p in parts[-3:])  # type: ignore[return-value]


def _fits(path: Path, dist: str, py: str | None, platform: str | None) -> bool:
    name, pys, _abis, plats = _tags(path)
    if name != dist.lower() or f"-{PINS[_pin(dist)]}-" not in path.name:
        return False
    if py and f"cp{py.replace('.', '')}" not in pys:
        return False
    if platform:
        kind, arch = platform.split("_", 1)
        return any(p.startswith(kind) and p.endswith(f"_{arch}") for p in plats)
    return True


def _pin(dist: str) -> str:
    return next(k for k in PINS if k.lower() == dist.lower())


def find_wheel(wheels: Path, dist: str, py: str | None, platform: str | None) -> Path | None:
    """The wheel of the pinned ``dist`` in ``wheels`` for this python and platform."""
    found = sorted(p for p in wheels.glob("*.whl") if _fits(p, dist, py, platform))
    return found[0] if found else None


def pip_command() -> list[str]:
    """A pip to download with: this interpreter's, python3's, or pip run by uv."""
    if importlib.util.find_spec("pip"):
        return [sys.executable, "-m", "pip"]
    for exe in ("python3", "python"):
        path = shutil.which(exe)
        if path and subprocess.run([path, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [path, "-m", "pip"]
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if Path(uv).exists():
        return [uv, "tool", "run", "--from", "pip", "pip"]
    raise BuildError("no pip to download wheels with: install pip, or pass --wheels DIR")


def _download(pip: list[str], wheels: Path, dist: str, want_py: str | None, want_plat: str | None) -> None:
    py, platform = want_py or "3.12", want_plat or "manylinux_x86_64"
    cmd = [
        *pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(wheels),
        "--python-version", py, "--implementation", "cp", "--abi", f"cp{py.replace('.', '')}",
        "--platform", PLATFORMS[platform], f"{_pin(dist)}=={PINS[_pin(dist)]}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode or not find_wheel(wheels, dist, want_py, want_plat):
        raise BuildError(
            f"could not download {dist} {PINS[_pin(dist)]} for cp{py} {platform}: "
            + (done.stderr.strip().splitlines() or ["no such wheel"])[-1]
        )


def fetch_wheels(
    wheels: Path, pythons: list[str], platforms: list[str], offline: bool = False
) -> dict[str, list[Path]]:
    """Find (downloading what is missing, unless ``offline``) every wheel the pyz needs."""
    wanted = [(dist, py, plat) for dist in COMPILED for py in pythons for plat in platforms]
    wanted += [("pyyaml", *YAML_WHEEL), ("packaging", None, None)]
    missing = [w for w in wanted if not find_wheel(wheels, *w)]
    if missing and offline:
        raise BuildError(f"missing in {wheels}: " + ", ".join(" ".join(filter(None, w)) for w in missing))
    if missing:
        wheels.mkdir(parents=True, exist_ok=True)
        pip = pip_command()
        print(f"downloading {len(missing)} wheels into {wheels}", file=sys.stderr)
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(_download, pip, wheels, *want) for want in missing]
            for job in jobs:
                job.result()
    found: dict[str, list[Path]] = {}
    for dist, py, plat in wanted[:-2]:  # the compiled wheels, one per Python and platform
        found.setdefault(dist, []).append(find_wheel(wheels, dist, py, plat))  # type: ignore[arg-type]
    found["pyyaml-pure"] = [find_wheel(wheels, "pyyaml", *YAML_WHEEL)]  # type: ignore[list-item]
    found["packaging"] = [find_wheel(wheels, "packaging", None, None)]  # type: ignore[list-item]
    return found


# -- contents ---------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else 1980-01-01 (zip's minimum)."""
    value = os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct") or 315532800
    return max(int(value), 315532800)


def git_commit() -> str:
    """HEAD, with ``-dirty`` when what goes into the pyz differs from it; else unknown."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=all", "--", "hpm_boot", "build_zipapp.py")
    return head + ("-dirty" if dirty else "")


def hpm_version() -> str:
    text = (ROOT / "hpm_boot" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise BuildError("no __version__ in hpm_boot/__init__.py")
    return match.group(1)


def _vendor(wheel: Path, package: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            base = name.rsplit("/", 1)[-1]
            if name.startswith(f"{package}/") and name.endswith(".py"):
                out[f"_vendor/{name}"] = zf.read(name)
            elif ".dist-info/" in name and base.upper().startswith(("LICENSE", "COPYING")):
                out[f"_vendor/licenses/{package}/{base}"] = zf.read(name)
    if f"_vendor/{package}/__init__.py" not in out:
        raise BuildError(f"{wheel.name} has no {package}/ package")
    return out


def collect(
    wheels: dict[str, list[Path]],
    pythons: list[str],
    platforms: list[str],
    bytecode: list[str] | None = None,
    strict_bytecode: bool = False,
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, Hot], dict, dict[bytes, bytes],
           dict[str, bytes]]:
    """The lib zip's files (name -> bytes), the start code (``_hpm_start``: its source and
    its bytecode per cache tag), the start-path modules (``write_pyz``'s ``hot``), the
    BUILD_INFO the lib carries, the entry code per magic number and the wheels (file name
    -> bytes, raw regions of the pyz).

    ``bytecode``: the Python versions to ship compiled modules for (see compile_bytecode).
    """
    files: dict[str, bytes] = {}
    for path in sorted((ROOT / "hpm_boot").rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    files.update(_vendor(wheels["pyyaml-pure"][0], "yaml"))
    files.update(_vendor(wheels["packaging"][0], "packaging"))
    index, wheel_data = [], {}
    for whl in sorted({w for dist in COMPILED for w in wheels[dist]}):
        data = whl.read_bytes()
        wheel_data[whl.name] = data  # raw regions of the pyz (write_pyz), not lib members
        index.append({"file": whl.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    sources = {n.removeprefix("_vendor/"): d for n, d in files.items()
               if n.endswith(".py") and n.startswith(BYTECODE_OF)}  # fmt: skip
    hot_names = {f"hpm_boot/{m}.py": (f"hpm_boot.{m}".removesuffix(".__init__"), m == "__init__", tier)
                 for tier, names in enumerate(HOT) for m in names}  # fmt: skip
    pyc, compiled, hot = compile_bytecode(sources, hot_names, bytecode or [], strict_bytecode)
    files.update(pyc)
    # ENTRY_PY compiled per interpreter, by magic number: for LAYOUT, not BUILD_INFO
    entries = {bytes.fromhex(c["magic"]): bytes.fromhex(c.pop("entry")) for c in compiled.values()}
    tiers = []
    for tier in range(len(HOT)):
        modules = {mod: (pkg, files.pop(n)) for n, (mod, pkg, t) in sorted(hot_names.items()) if t == tier}
        blob = marshal.dumps(modules, 2)  # format 2: see COMPILE_PY
        tiers.append((tuple(sorted(modules)), blob, zlib.crc32(blob)))
    hot["source"] = ("", tiers)
    start = {"_hpm_start.py": files.pop(START)}
    for version in compiled.values():
        tag = version["tag"]
        start[f"{tag}/_hpm_start.pyc"] = files.pop(f"_pyc/{tag}/{START[:-3]}.pyc")
    files["__main__.py"] = RESCUE_PY.encode()  # found only in a file cut just after the lib
    epoch = source_date_epoch()
    info = {
        "version": hpm_version(),
        "commit": git_commit(),
        "source_date_epoch": epoch,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
        "deps": dict(PINS),
        "pythons": pythons,
        "platforms": platforms,
        "wheels": index,
        "bytecode": compiled,
        "start_modules": [sorted(f"hpm_boot.{m}".removesuffix(".__init__") for m in tier) for tier in HOT],
    }
    files["BUILD_INFO"] = (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()
    return files, start, hot, info, entries, wheel_data


# -- bytecode -------------------------------------------------------------------------

#: The source of the start code (shipped as ``_hpm_start``), in compile_bytecode's names
START = "hpm_boot/_start.py"
#: Key of the SipHash (``_imp.source_hash``, built into every CPython) that checks a start
#: region: unlike zlib.crc32 it costs no shared-library load at start (see _start.py)
HASH_KEY = 0x68706D

#: Run by each target interpreter: reads {"sources": {name: source}, "hot": {name: [module,
#: is_package, tier]}, "start": name, "key": HASH_KEY} as JSON on stdin, writes {name: hex
#: of a .pyc} for the others, the SipHash of the ``start`` one, each tier of hot modules as
#: [modules, hex of the marshalled {module: (is_package, code)}, hex of its SipHash], and
#: the interpreter's version, cache tag and magic number. The .pyc files are unchecked-hash
#: based: no timestamps, and the archive never changes. A hot module's
#: ``from __future__ import annotations`` becomes a compiler flag, which saves an import at
#: every start. marshal format 2 for the tiers: no back-references, whose flags follow
#: reference counts and would make two builds differ.
COMPILE_PY = """\
import _imp, __future__, importlib.util, json, marshal, sys
job = json.load(sys.stdin)
out, tiers = {}, {}
future = b"\\nfrom __future__ import annotations\\n"
for name, source in sorted(job["sources"].items()):
    data, flags = source.encode(), 0
    if name in job["hot"] and future in data:
        data, flags = data.replace(future, b"\\n\\n", 1), __future__.annotations.compiler_flag
    # the start path without docstrings and asserts: less to check, read and unmarshal
    optimize = 2 if name in job["hot"] or name == job["start"] else 0
    code = marshal.dumps(compile(data, name, "exec", flags=flags, dont_inherit=True, optimize=optimize))
    if name in job["hot"]:
        module, package, tier = job["hot"][name]
        tiers.setdefault(tier, {})[module] = (package, code)
    else:
        out[name] = (importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
                     + importlib.util.source_hash(data) + code).hex()
start = bytes.fromhex(out[job["start"]])
entry = marshal.dumps(compile(job["entry"], "_hpm_entry.py", "exec", dont_inherit=True, optimize=2))
hot = []
for tier, modules in sorted(tiers.items()):
    blob = marshal.dumps(modules, 2)
    hot.append([sorted(modules), blob.hex(), _imp.source_hash(job["key"], blob).hex()])
json.dump({"version": sys.version.split()[0], "tag": sys.implementation.cache_tag,
           "magic": importlib.util.MAGIC_NUMBER.hex(), "pyc": out, "hot": hot,
           "start": _imp.source_hash(job["key"], start).hex(), "entry": entry.hex()}, sys.stdout)
"""


def entry_source() -> bytes:
    """``_hpm_entry.py``: ENTRY_PY with the key of its SipHash."""
    return ENTRY_PY.replace("{key}", str(HASH_KEY)).encode()


def find_python(version: str) -> str | None:
    """A working CPython ``version`` (X.Y) to compile with: this one, pyenv's newest, python3.X on PATH."""
    candidates = [sys.executable] if f"{sys.version_info[0]}.{sys.version_info[1]}" == version else []
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(
        (tuple(int(x) for x in p.name.split(".")), str(p / "bin" / "python3"))
        for p in pyenv.glob(f"{version}.*")
        if re.fullmatch(r"\d+\.\d+\.\d+", p.name) and (p / "bin" / "python3").exists()
    )
    candidates += [exe for _, exe in reversed(found)]
    candidates += [exe for exe in [shutil.which(f"python{version}")] if exe]
    check = f"import sys; sys.exit(sys.version_info[:2] != ({version.replace('.', ', ')}))"
    for exe in candidates:
        if subprocess.run([exe, "-I", "-c", check], capture_output=True).returncode == 0:
            return exe
    return None


def compile_bytecode(
    sources: dict[str, bytes], hot: dict[str, tuple[str, bool, int]], versions: list[str], strict: bool
) -> tuple[dict[str, bytes], dict, dict[str, Hot]]:
    """``_pyc/<cache tag>/<module>.pyc`` for every source but the ``hot`` ones (source name
    -> (module, is_package, tier)), per Python version; those go into one blob per tier.

    Returns the files, ``{version: {"python": X.Y.Z, "tag": ..., "magic": ...}}`` and the
    tiers per cache tag. A version without an interpreter is skipped, or an error when
    ``strict``.
    """
    files: dict[str, bytes] = {}
    done: dict[str, dict] = {}
    blobs: dict[str, Hot] = {}
    payload = json.dumps({"sources": {name: data.decode() for name, data in sources.items()}, "hot": hot,
                          "start": START, "key": HASH_KEY, "entry": entry_source().decode()})
    for version in versions:
        python = find_python(version)
        if python is None:
            if strict:
                raise BuildError(f"no Python {version} to compile bytecode with: put python{version} on PATH")
            continue
        # 3.10 marshals set constants in hash order: fix the seed (hence no -I, which ignores it)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONHASHSEED": "0"}
        cmd = [python, "-S", "-s", "-c", COMPILE_PY]
        run = subprocess.run(cmd, input=payload, capture_output=True, text=True, env=env)
        if run.returncode:
            raise BuildError(f"compiling bytecode with {python} failed: {run.stderr.strip()[-500:]}")
        out = json.loads(run.stdout)
        for name, pyc in out["pyc"].items():
            files[f"_pyc/{out['tag']}/{name[: -len('.py')]}.pyc"] = bytes.fromhex(pyc)
        done[version] = {"python": out["version"], "tag": out["tag"], "magic": out["magic"],
                         "start": out["start"], "entry": out["entry"]}
        tiers = [(tuple(n), bytes.fromhex(blob), bytes.fromhex(check)) for n, blob, check in out["hot"]]
        blobs[out["tag"]] = (out["magic"], tiers)
    return files, done, blobs


# -- the archive --------------------------------------------------------------------------


def _info(name: str, epoch: int, stored: bool) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, time.gmtime(epoch)[:6])
    zi.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    zi.external_attr = FILE_MODE << 16
    zi.create_system = 3
    return zi


def rescue_zip(epoch: int) -> bytes:
    """A complete tiny zip whose ``__main__.py`` reports a cut-short hpm.pyz."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_info("__main__.py", epoch, stored=True), RESCUE_PY)
    return buf.getvalue()


class _Stream:
    """Bytes being written with a rescue zip at most RESCUE_GAP bytes after the last one.

    The rescue zips sit between members and regions, in no zip directory: when a download
    cuts the file short, its real end record is gone and zipimport falls back to the last
    end record within the final 64 KiB, which is then a rescue zip's.
    """

    def __init__(self, epoch: int) -> None:
        self.buf = io.BytesIO()
        self.rescue_bytes = rescue_zip(epoch)
        self.last = 0  # where the last rescue zip ends

    def tell(self) -> int:
        return self.buf.tell()

    def rescue(self) -> None:
        self.buf.write(self.rescue_bytes)
        self.last = self.buf.tell()

    def put(self, data: bytes) -> tuple[tuple[int, int], ...]:
        """Write ``data`` as a raw region: its pieces' (offset, length), rescue zips
        between them, and a cut through every end-record signature in ``data``."""
        signs = [m.start() + 2 for m in re.finditer(re.escape(b"PK\x05\x06"), data)]
        pieces, pos = [], 0
        while pos < len(data):
            room = RESCUE_GAP - 64 - (self.tell() - self.last)
            if room <= 0:
                self.rescue()
                continue
            end = min([len(data), pos + room, *(c for c in signs if c > pos)])
            pieces.append((self.tell(), end - pos))
            self.buf.write(data[pos:end])
            pos = end
            if pos < len(data):
                self.rescue()
        return tuple(pieces)

    def zip(self, files: dict[str, bytes], epoch: int, stored: bool = False, comment: bytes = b"") -> None:
        """Write ``files`` (sorted) as one zip, rescue zips between its members and before
        its directory; deflated unless ``stored``."""
        with zipfile.ZipFile(self.buf, "w") as zf:
            for name in sorted(files):
                data = files[name]
                if self.tell() + 30 + len(name) + len(data) + 64 - self.last > RESCUE_GAP:
                    self.rescue()
                    zf.start_dir = self.tell()  # where zipfile writes the next member
                zf.writestr(_info(name, epoch, stored), data, compresslevel=None if stored else 9)
            # a rescue zip right before the directory: the last members' bytes then never
            # count against the 64 KiB that zipimport searches from the end
            self.rescue()
            zf.start_dir = self.tell()
            if comment:
                zf.comment = comment
        if self.tell() - self.last > 0xFFFF:
            raise BuildError("zip directory too large for the rescue zips: more than 64 KiB of entries")


def write_pyz(
    files: dict[str, bytes],
    start: dict[str, bytes],
    checks: dict[str, tuple[str, bytes]],
    hot: dict[str, Hot],
    epoch: int,
    comment: str = "hpm.pyz",
    entry: dict[bytes, bytes] | None = None,
    wheels: dict[str, bytes] | None = None,
) -> bytes:
    """The archive's bytes: the lib zip (``files``); the start-path modules (``hot``: cache
    tag or ``source`` -> (magic number, tiers)) as raw regions; then the small zip that
    Python runs: ``__main__.py``, ``_hpm_entry.py``, the ``start`` files and ``LAYOUT``
    (marshalled: where the lib and each tier are, a region being (check, ((offset,
    length), ...)); ``checks``: cache tag -> (magic number, SipHash of the start .pyc);
    ``entry``: magic number -> ENTRY_PY compiled and marshalled by that interpreter).
    ``wheels`` (file name -> bytes) are raw regions too, cut through their end records;
    their index (file name -> region) is one more region, LAYOUT["wheels"], read only
    when a wheel is unpacked: in no zip directory, whose 64 KiB window they would burst.

    The 64-byte archive comment means a file cut short by up to 64 bytes still runs.
    """
    lib = _Stream(epoch)
    lib.rescue()
    lib.zip(files, epoch)
    lib_bytes = lib.buf.getvalue()
    out = _Stream(epoch)
    out.buf.write(SHEBANG)
    at = out.tell()
    out.buf.write(lib_bytes)
    out.last = at + lib.last
    out.rescue()
    layout: dict = {
        "lib": (zlib.crc32(lib_bytes), ((at, len(lib_bytes)),)),
        "lib_key": hashlib.sha256(lib_bytes).hexdigest()[:24],
        "hot": {},
    }
    for tag, (magic, tiers) in sorted(hot.items()):
        regions = [(names, (check, out.put(blob))) for names, blob, check in tiers]
        if tag == "source":
            layout["source"] = regions
        else:
            layout["hot"][tag] = (magic, regions)
    wheel_index = {name: (zlib.crc32(data), out.put(data)) for name, data in sorted((wheels or {}).items())}
    blob = marshal.dumps(wheel_index, 2)
    layout["wheels"] = (zlib.crc32(blob), out.put(blob))
    layout["start"] = {tag: (bytes.fromhex(magic), check) for tag, (magic, check) in checks.items()}
    layout["entry"] = entry or {}
    entries = {**start, "__main__.py": MAIN_STUB.encode(), "_hpm_entry.py": entry_source(),
               "LAYOUT": marshal.dumps(layout, 2)}
    out.zip(entries, epoch, stored=True, comment=comment.encode()[:64].ljust(64))
    return out.buf.getvalue()


def read_layout(pyz: bytes) -> dict:
    """The LAYOUT that ``pyz`` carries (for tests and benches)."""
    return marshal.loads(zipfile.ZipFile(io.BytesIO(pyz)).read("LAYOUT"))


def read_region(pyz: bytes, region: tuple) -> bytes:
    """The bytes of a LAYOUT region of ``pyz``, whatever their CRC."""
    return b"".join(pyz[at : at + size] for at, size in region[1])


def build(
    output: Path,
    wheels_dir: Path,
    pythons: list[str] | None = None,
    platforms: list[str] | None = None,
    offline: bool = False,
    bytecode: list[str] | None = None,
) -> dict:
    """Build the pyz at ``output``; returns its BUILD_INFO plus ``size`` and ``sha256``.

    ``bytecode``: versions to compile for (an interpreter of each must be found); None
    means every one of ``pythons`` that has an interpreter here, ``[]`` none.
    """
    pythons = sorted(pythons or PYTHONS)
    platforms = sorted(platforms or PLATFORMS)
    wheels = fetch_wheels(wheels_dir, pythons, platforms, offline)
    strict = bytecode is not None
    compiled_for = pythons if bytecode is None else bytecode
    files, start, hot, info, entry, wheel_data = collect(wheels, pythons, platforms, compiled_for, strict)
    comment = f"hpm {info['version']} {info['commit']}"
    checks = {c["tag"]: (c["magic"], bytes.fromhex(c["start"])) for c in info["bytecode"].values()}
    data = write_pyz(files, start, checks, hot, info["source_date_epoch"], comment, entry, wheel_data)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, output)
    return {**info, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _choices(values: list[str] | None, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    chosen = [v for item in values or [] for v in item.split(",") if v]
    if "all" in chosen or not chosen:
        return list(allowed)
    bad = [v for v in chosen if v not in allowed]
    if bad:
        raise BuildError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}, all")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the single-file hpm.pyz.")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "dist" / "hpm.pyz")
    default_wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    parser.add_argument("--wheels", type=Path, default=default_wheels,
                        help="directory of wheels to use (default: HPM_WHEELS, else build/wheels); missing "
                        "ones are downloaded into it")  # fmt: skip
    parser.add_argument("--platform", action="append", metavar="P",
                        help=f"msgspec wheels to include: {', '.join(PLATFORMS)}, all")  # fmt: skip
    parser.add_argument("--python", action="append", metavar="X.Y",
                        help=f"CPython versions to include: {', '.join(PYTHONS)}, all")  # fmt: skip
    parser.add_argument("--offline", action="store_true", help="never download: fail if a wheel is missing")
    parser.add_argument("--download-only", action="store_true", help="fill --wheels and stop")
    parser.add_argument("--bytecode", action="append", metavar="X.Y",
                        help="compile modules for these Pythons (each must be found: python3.X on PATH "
                        "or under ~/.pyenv); none, all; default: those of --python found here")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        platforms = _choices(args.platform, list(PLATFORMS), "platform")
        pythons = _choices(args.python, PYTHONS, "python")
        bytecode = None
        if args.bytecode:
            bytecode = (
                [] if args.bytecode == ["none"] else _choices(args.bytecode, pythons, "bytecode python")
            )
        if args.download_only:
            fetch_wheels(args.wheels, pythons, platforms, args.offline)
            print(f"wheels ready in {args.wheels}")
            return 0
        info = build(args.output, args.wheels, pythons, platforms, args.offline, bytecode)
    except BuildError as exc:
        print(f"build_zipapp: {exc}", file=sys.stderr)
        return 1
    print(
        f"built {args.output}: {info['size']:,} bytes ({info['size'] / 1e6:.2f} MB), "
        f"{len(info['wheels'])} compiled wheels (msgspec, PyYAML), "
        f"bytecode for {', '.join(info['bytecode']) or 'none'}, "
        f"hpm {info['version']} {info['commit'][:12]}, "
        f"sha256 {info['sha256'][:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

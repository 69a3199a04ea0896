"""hpm.pyz: a reproducible build; msgspec, yaml and packaging importable from it on every
Python; a cache that racing processes share; fallbacks and clear errors.

The wheels come from ``build/wheels`` (``HPM_WHEELS`` overrides it), which
``python build_zipapp.py --download-only`` fills; what is missing there is downloaded
once, in the session fixture, before any build.
"""

from __future__ import annotations

import importlib.util
import io
import json
import marshal
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build_zipapp
from hpm_boot import _pyz

ROOT = Path(__file__).resolve().parents[1]
PYENV = Path.home() / ".pyenv" / "versions"
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
    platform.machine().lower(), platform.machine()
)
OTHER_PLATFORM = "musllinux_aarch64" if ARCH == "x86_64" else "musllinux_x86_64"
PROBE = """\
import json, sys
sys.path.insert(0, sys.argv[1])
import _hpm_start
_hpm_start.serve(sys.argv[1])  # as the pyz's __main__.py does, without running hpm
import hpm_boot._pyz as p
p.setup()
from hpm_boot.errors import HpmError
try:
    import msgspec, yaml, packaging.version
except HpmError as exc:
    print(json.dumps({"error": type(exc).__name__, "code": exc.exit_code,
                      "message": exc.message, "details": exc.details}))
    raise SystemExit(0)
print(json.dumps({"msgspec": msgspec.__file__, "yaml": yaml.__file__, "lib": p.lib_path(),
                  "libyaml": yaml.__with_libyaml__, "packaging": packaging.__file__,
                  "roundtrip": msgspec.json.decode(msgspec.json.encode({"a": [1]})),
                  "self_check": p.self_check_info()}))
"""


def python_for(version: str) -> str | None:
    """An interpreter of ``version`` (X.Y): this one, or one under ~/.pyenv/versions."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = sorted(PYENV.glob(f"{version}.*/bin/python3"))
    return str(found[-1]) if found else None


@pytest.fixture(scope="session")
def wheels_dir() -> Path:
    """The wheel directory every build here uses (filled, if need be, once)."""
    wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    try:
        build_zipapp.fetch_wheels(wheels, list(build_zipapp.PYTHONS), list(build_zipapp.PLATFORMS))
    except build_zipapp.BuildError as exc:
        pytest.fail(f"wheels for hpm.pyz: {exc}; run: python build_zipapp.py --download-only")
    return wheels


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory, wheels_dir: Path) -> Path:
    """A full hpm.pyz (all Pythons and platforms)."""
    out = tmp_path_factory.mktemp("pyz") / "hpm.pyz"
    build_zipapp.build(out, wheels_dir, offline=True)
    return out


def run_probe(python: str, archive: Path, env: dict[str, str], cwd: Path) -> dict:
    done = subprocess.run(
        [python, "-I", "-c", PROBE, str(archive)], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def lib_zip(pyz: Path | bytes) -> zipfile.ZipFile:
    """The lib zip inside ``pyz`` (everything but the start path)."""
    data = pyz if isinstance(pyz, bytes) else pyz.read_bytes()
    return zipfile.ZipFile(io.BytesIO(build_zipapp.read_region(data, build_zipapp.read_layout(data)["lib"])))


def cache_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPM_", "XDG_"))}
    env.update({"HPM_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"), **extra})
    return env


# -- the build ---------------------------------------------------------------------------


def test_two_builds_are_byte_identical(pyz: Path, wheels_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.pyz"
    build_zipapp.build(again, wheels_dir, offline=True)
    assert again.read_bytes() == pyz.read_bytes()


def test_source_date_epoch_and_modes(
    wheels_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "hpm.pyz"
    build_zipapp.build(out, wheels_dir, ["3.12"], ["manylinux_x86_64"], offline=True)
    with zipfile.ZipFile(out) as outer, lib_zip(out) as lib:
        infos = outer.infolist() + lib.infolist()
        assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        info = json.loads(lib.read("BUILD_INFO"))
    assert info["source_date_epoch"] == 1700000000
    assert out.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_layout_and_build_info(pyz: Path) -> None:
    data = pyz.read_bytes()
    layout = build_zipapp.read_layout(data)
    with zipfile.ZipFile(pyz) as zf:  # what Python reads at every start: a few entries
        outer = set(zf.namelist())
        main_py = zf.read("__main__.py").decode()
    with lib_zip(data) as lib:
        names = set(lib.namelist())
        info = json.loads(lib.read("BUILD_INFO"))
    tags = {c["tag"] for c in info["bytecode"].values()}
    tag = sys.implementation.cache_tag
    assert tag in tags
    assert outer == {"__main__.py", "_hpm_entry.py", "LAYOUT", "_hpm_start.py",
                     *(f"{t}/_hpm_start.pyc" for t in tags)}
    # Python compiles __main__.py twice at every start: it only runs the entry code
    assert main_py == build_zipapp.MAIN_STUB and len(main_py) < 400
    assert set(layout["entry"]) == {bytes.fromhex(c["magic"]) for c in info["bytecode"].values()}
    assert marshal.loads(layout["entry"][importlib.util.MAGIC_NUMBER]).co_filename == "_hpm_entry.py"
    assert "entry" not in json.dumps(info["bytecode"])  # BUILD_INFO stays small
    # the start path: tiers of modules per interpreter, and as source for the others
    hot = [m for tier in build_zipapp.HOT for m in tier]
    assert info["start_modules"][0] == [
        "hpm_boot", "hpm_boot.__main__", "hpm_boot.contract", "hpm_boot.fastargs", "hpm_boot.handover",
        "hpm_boot.log", "hpm_boot.target", "hpm_boot.warmstart"]
    assert set(layout["hot"]) == tags
    for regions in [layout["source"], *(r for _, r in layout["hot"].values())]:
        assert [names for names, _ in regions] == [tuple(t) for t in info["start_modules"]]
    source = {}
    for _, region in layout["source"]:
        source.update(marshal.loads(build_zipapp.read_region(data, region)))
    assert source["hpm_boot.warmstart"] == (False, (ROOT / "hpm_boot" / "warmstart.py").read_bytes())
    # the lib: everything else
    assert {"__main__.py", "BUILD_INFO", "hpm_boot/cli/__init__.py"} <= names
    assert "hpm_boot/_pyz.py" not in names
    assert {"_vendor/yaml/__init__.py", "_vendor/packaging/tags.py"} <= names
    assert not [n for n in names if n.endswith(".so") or n.startswith("_vendor/_yaml")]
    assert not [n for n in names if n.endswith(".pyc") and not n.startswith("_pyc/")]
    assert {f"_pyc/{tag}/hpm_boot/cli/__init__.pyc", f"_pyc/{tag}/yaml/__init__.pyc"} <= names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hpm_boot").rglob("*.py")}
    in_lib = {n for n in names if n.startswith("hpm_boot/")}
    assert in_lib == sources - {f"hpm_boot/{m}.py" for m in [*hot, "_start"]}
    assert info["deps"] == build_zipapp.PINS
    compiled = len(build_zipapp.COMPILED) * len(build_zipapp.PYTHONS) * len(build_zipapp.PLATFORMS)
    assert len(info["wheels"]) == compiled
    data = pyz.read_bytes()
    index = marshal.loads(build_zipapp.read_region(data, build_zipapp.read_layout(data)["wheels"]))
    assert sorted(index) == sorted(w["file"] for w in info["wheels"])  # raw regions, in no zip directory
    assert not [n for n in names if n.startswith("_wheels/")]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert info["commit"].removesuffix("-dirty") == (head.stdout.strip() or "unknown")


def test_cli_errors() -> None:
    assert build_zipapp.main(["--platform", "solaris_sparc", "--offline"]) == 1


# -- the runtime -------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_imports_from_the_pyz(version: str, pyz: Path, tmp_path: Path) -> None:
    python = python_for(version)
    if python is None:
        pytest.skip(f"no Python {version} here")
    out = run_probe(python, pyz, cache_env(tmp_path), tmp_path)
    cache = tmp_path / "cache" / "wheels"
    assert Path(out["msgspec"]).is_relative_to(cache)
    lib = out["lib"]
    assert Path(lib).parent == tmp_path / "cache" / "lib" and Path(lib).is_file()
    tag = f"cpython-{version.replace('.', '')}"
    # PyYAML from its wheel for this interpreter, with the libyaml extension
    assert Path(out["yaml"]).is_relative_to(cache) and out["libyaml"] is True, out
    assert out["packaging"] == f"{lib}/_pyc/{tag}/packaging/__init__.pyc"
    assert out["roundtrip"] == {"a": [1]}
    assert out["self_check"]["interpreter"] == f"cp{version.replace('.', '')}"
    assert out["self_check"]["msgspec_wheel"].startswith(f"msgspec-{build_zipapp.PINS['msgspec']}-cp")
    # warm: same directory, nothing new extracted
    assert run_probe(python, pyz, cache_env(tmp_path), tmp_path)["msgspec"] == out["msgspec"]
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2  # msgspec and PyYAML


COUNTING_PROBE = """\
import json, sys
sys.path.insert(0, sys.argv[1])
import _hpm_start
_hpm_start.serve(sys.argv[1])
import hpm_boot._pyz as p
calls = {"build_info": 0, "platform_tags": 0}
def counted(name):
    real = getattr(p, name)
    def call(*args):
        calls[name] += 1
        return real(*args)
    setattr(p, name, call)
counted("build_info"), counted("platform_tags")
p.setup()
import msgspec, yaml
print(json.dumps({"calls": calls, "libyaml": yaml.__with_libyaml__, "msgspec": msgspec.__file__}))
"""


def test_the_finder_reads_the_wheel_index_and_the_tags_once(pyz: Path, tmp_path: Path) -> None:
    """The two imports the finder serves (msgspec, PyYAML's wheel) share one reading of the
    wheel index and one computation of this interpreter's tags (on musl, a process)."""
    done = subprocess.run([sys.executable, "-I", "-c", COUNTING_PROBE, str(pyz)], capture_output=True,
                          text=True, env=cache_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["libyaml"] is True and Path(out["msgspec"]).is_relative_to(tmp_path / "cache" / "wheels")
    assert out["calls"] == {"build_info": 1, "platform_tags": 1}


def test_two_hundred_processes_race_on_a_cold_cache(pyz: Path, tmp_path: Path) -> None:
    env = cache_env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-c", PROBE, str(pyz)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(200)  # as many as the issue names: all succeed, one extraction
    ]
    results = [(p.wait(), *p.communicate()) for p in procs]
    assert [r for r in results if r[0] != 0] == []
    assert len({json.loads(out)["msgspec"] for _, out, _ in results}) == 1
    entries = sorted(p.name for p in (tmp_path / "cache" / "wheels").iterdir())
    dirs = [n for n in entries if (tmp_path / "cache" / "wheels" / n).is_dir()]
    assert len(dirs) == 2 and not [d for d in dirs if d.startswith(".")]  # msgspec and PyYAML, once each
    assert entries == sorted([*dirs, *(f"{d}.lock" for d in dirs)])  # no temp or probe leftovers
    libs = sorted(p.name for p in (tmp_path / "cache" / "lib").iterdir())
    assert len(libs) == 2 and libs[1] == f"{libs[0]}.lock"  # the lib zip too: unpacked once


def test_unusable_cache_falls_back(pyz: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = cache_env(tmp_path, HPM_CACHE=str(blocker / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    out = run_probe(sys.executable, pyz, env, tmp_path)
    assert Path(out["msgspec"]).is_relative_to(tmp_path / "xdg" / "hpm" / "wheels")
    assert Path(out["lib"]).is_relative_to(tmp_path / "xdg" / "hpm" / "lib")
    if os.geteuid() != 0:  # root writes anywhere: a read-only directory only stops others
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        env["HPM_CACHE"] = str(ro)
        out = run_probe(sys.executable, pyz, env, tmp_path)
        assert Path(out["msgspec"]).is_relative_to(tmp_path / "xdg" / "hpm" / "wheels")


def test_no_usable_cache_is_one_clear_error(pyz: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    (tmpdir / f"hpm-{os.getuid()}").write_text("")  # the temp-dir place is taken by a file
    env = cache_env(
        tmp_path,
        HPM_CACHE=str(blocker / "c"),
        XDG_CACHE_HOME=str(blocker / "x"),
        HOME=str(blocker),
        TMPDIR=str(tmpdir),
    )
    out = run_probe(sys.executable, pyz, env, tmp_path)
    assert out["error"] == "NotWritableError" and out["code"] == 73
    assert "HPM_CACHE" in out["message"] and str(blocker / "c") in out["details"]
    # hpm's own modules need no cache: they go to a memory file; only msgspec needs one
    done = subprocess.run([sys.executable, str(pyz), "--version"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.startswith("hpm "), done.stderr
    done = subprocess.run([sys.executable, str(pyz), "validate", "-r", str(ROOT / "examples" / "registry")],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 73
    assert done.stderr.startswith("hpm: error: no cache directory to unpack msgspec"), done.stderr


def test_a_platform_without_a_wheel_is_a_clear_error(wheels_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pyz"
    info = build_zipapp.build(other, wheels_dir, None, [OTHER_PLATFORM], offline=True)
    assert info["size"] - sum(w["size"] for w in info["wheels"]) < 3_500_000  # mostly bytecode
    out = run_probe(sys.executable, other, cache_env(tmp_path), tmp_path)
    assert out["error"] == "NotFoundError" and out["code"] == 66
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"no msgspec wheel for cp{py.replace('.', '')}" in out["message"]
    libc = "manylinux" if _pyz._glibc() else "musllinux"
    assert f"build_zipapp.py --platform {libc}_{ARCH} --python {py}" in out["message"]


def test_pyz_runs_and_shows_its_version(pyz: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(pyz), "--version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "hpm" in done.stdout


@pytest.mark.parametrize("cut", [2_000, 0.3, 0.5, 0.77, 0.99, -5_000, -100])
def test_a_truncated_pyz_says_it_is_damaged(pyz: Path, tmp_path: Path, cut: float) -> None:
    data = pyz.read_bytes()
    end = int(cut * len(data)) if isinstance(cut, float) else cut % len(data)
    sig = data.rfind(b"PK\x05\x06", 0, end)
    if sig >= 0 and end - sig < 22:  # the one blind spot: a cut inside an end record
        end = sig
    short = tmp_path / "short.pyz"
    short.write_bytes(data[:end])
    done = subprocess.run([sys.executable, str(short), "--version"], capture_output=True, text=True)
    assert done.returncode == 65
    assert done.stderr == (
        f"hpm: the file {short} is damaged (it ends too early: a cut-short download or copy); "
        "download or build it again\n"
    )


def test_a_damaged_entry_code_falls_back_to_its_source(pyz: Path, tmp_path: Path) -> None:
    """The entry code __main__.py runs is not checked (nothing could check it first): bad
    marshal data there falls back to ``_hpm_entry.py``, which then checks the rest."""
    data = bytearray(pyz.read_bytes())
    code = build_zipapp.read_layout(bytes(data))["entry"][importlib.util.MAGIC_NUMBER]
    at = data.find(code) + len(code) // 2
    data[at : at + 8] = b"\xff" * 8
    bad = tmp_path / "bad.pyz"
    bad.write_bytes(data)
    done = subprocess.run([sys.executable, str(bad), "--version"], capture_output=True, text=True,
                          env=cache_env(tmp_path))
    assert done.returncode == 0 and done.stdout.startswith("hpm "), done.stderr


@pytest.mark.parametrize("where", ["first tier", "second tier", "source", "lib", "start code"])
def test_a_corrupted_pyz_says_it_is_damaged(pyz: Path, wheels_dir: Path, tmp_path: Path, where: str) -> None:
    if where == "source":  # read only where no bytecode fits
        pyz = tmp_path / "plain.pyz"
        build_zipapp.build(pyz, wheels_dir, ["3.12"], ["manylinux_x86_64"], offline=True, bytecode=[])
    data = bytearray(pyz.read_bytes())
    layout = build_zipapp.read_layout(bytes(data))
    tag = sys.implementation.cache_tag
    if where == "start code":
        with zipfile.ZipFile(pyz) as zf:
            member = zf.getinfo(f"{tag}/_hpm_start.pyc")
        at = member.header_offset + 30 + len(member.filename) + 16
    else:
        tiers = layout["source"] if where == "source" else layout["hot"][tag][1]
        region = layout["lib"] if where == "lib" else tiers[where == "second tier"][1]
        at = region[1][0][0] + region[1][0][1] // 2
    data[at : at + 32] = b"\xff" * 32
    bad = tmp_path / "bad.pyz"
    bad.write_bytes(data)
    # `install` with a lock imports from both tiers (payload); the CLI (--version) the lib
    args = ["--version"] if where == "lib" else ["install"]
    env = cache_env(tmp_path, HPM_LOCK_B64="hpm1.AAAA")
    done = subprocess.run([sys.executable, str(bad), *args], capture_output=True, text=True, env=env)
    assert done.returncode == 65, done.stderr
    assert "damaged" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_bytecode_is_used_and_can_be_left_out(wheels_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.pyz"
    info = build_zipapp.build(out, wheels_dir, ["3.12"], ["manylinux_x86_64"], offline=True, bytecode=[])
    assert info["bytecode"] == {}
    with zipfile.ZipFile(out) as zf, lib_zip(out) as lib:
        assert not [n for n in zf.namelist() + lib.namelist() if n.endswith(".pyc")]
    assert build_zipapp.read_layout(out.read_bytes())["hot"] == {}
    done = subprocess.run([sys.executable, str(out), "--version"], capture_output=True, text=True,
                          env=cache_env(tmp_path))  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("hpm "), done.stderr


def test_a_corrupted_wheel_is_caught(pyz: Path, tmp_path: Path) -> None:
    env = cache_env(tmp_path)
    damaged = tmp_path / "damaged.pyz"
    data = bytearray(pyz.read_bytes())
    with lib_zip(pyz) as lib:
        wheel = _pyz.select_wheel([w["file"] for w in json.loads(lib.read("BUILD_INFO"))["wheels"]])
    layout = build_zipapp.read_layout(bytes(data))
    index = marshal.loads(build_zipapp.read_region(bytes(data), layout["wheels"]))
    at = index[wheel][1][0][0] + 1000  # in the wheel's first piece
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    damaged.write_bytes(data)
    damaged.chmod(0o755)
    out = run_probe(sys.executable, damaged, env, tmp_path)
    assert out["error"] == "DataError" and out["code"] == 65
    assert "is damaged" in out["message"] and wheel in out["message"], out


# -- pieces of _pyz, in process ----------------------------------------------------------


def test_select_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [
        "msgspec-0.22.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "msgspec-0.22.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        "msgspec-0.22.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
        "msgspec-0.22.0-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    ]
    monkeypatch.setattr(_pyz, "interpreter_tag", lambda: ("cp312", "cp312"))
    monkeypatch.setattr(_pyz, "platform_tags", lambda: ["manylinux_2_36_x86_64", "manylinux_2_17_x86_64"])
    assert _pyz.select_wheel(names) == names[0]
    monkeypatch.setattr(_pyz, "platform_tags", lambda: ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64"])
    assert _pyz.select_wheel(names) == names[1]
    monkeypatch.setattr(_pyz, "platform_tags", lambda: ["manylinux_2_12_x86_64"])  # glibc too old
    assert _pyz.select_wheel(names) is None
    monkeypatch.setattr(_pyz, "interpreter_tag", lambda: ("cp313", "cp313t"))  # free-threaded
    monkeypatch.setattr(_pyz, "platform_tags", lambda: ["manylinux_2_17_x86_64"])
    assert _pyz.select_wheel(names) is None


def test_platform_tags_of_this_machine() -> None:
    tags = _pyz.platform_tags()
    assert tags[-1] == f"linux_{ARCH}"
    if _pyz._glibc():
        assert tags[0].startswith("manylinux_2_") and f"manylinux2014_{ARCH}" in tags


def test_noexec_place_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoExec:
        f_flag = os.ST_NOEXEC

    assert _pyz._problem(str(tmp_path), probe=True) is None
    monkeypatch.setattr(os, "statvfs", lambda path: NoExec())
    assert _pyz._problem(str(tmp_path), probe=True) == "mounted noexec"
    assert _pyz._problem(str(tmp_path), "lib", probe=True) is None  # a zip needs no exec


def test_cache_places_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPM_CACHE", "/c")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    monkeypatch.setenv("HOME", "/h")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    assert _pyz.cache_places() == ["/c", "/x/hpm", "/h/.cache/hpm", f"{tmp_path}/hpm-{os.getuid()}"]


def test_build_info_outside_a_pyz() -> None:
    from hpm_boot import __version__

    assert _pyz.PYZ is None
    assert _pyz.build_info()["version"] == __version__ and _pyz.build_info()["commit"] == "unknown"


# -- macOS: the wheel choice against simulated macOS tags ---------------------------------


def test_mac_platform_tags_follow_packaging() -> None:
    """Our stdlib stand-in gives the tags packaging.tags.mac_platforms gives (the order of
    the arch-specific ones, which is what the choice depends on)."""
    from packaging import tags

    for version, arch in (((14, 2), "arm64"), ((13, 0), "x86_64"), ((10, 15), "x86_64"), ((11, 0), "arm64")):
        ours = _pyz.mac_platforms(version, arch)
        theirs = list(tags.mac_platforms(version, arch))
        for kind in (f"_{arch}", "_universal2"):
            assert [t for t in ours if t.endswith(kind)] == [t for t in theirs if t.endswith(kind)]


@pytest.mark.parametrize(("py", "version", "arch", "msgspec_plat", "yaml_plat"), [
    ("cp312", (14, 2), "arm64", "macosx_11_0_arm64", "macosx_11_0_arm64"),
    ("cp313", (15, 1), "arm64", "macosx_11_0_arm64", "macosx_11_0_arm64"),
    ("cp311", (13, 6), "x86_64", "macosx_10_9_x86_64", "macosx_10_15_x86_64"),
    ("cp314", (14, 0), "x86_64", "macosx_10_15_x86_64", "macosx_10_15_x86_64"),
    ("cp312", (10, 14), "x86_64", "macosx_10_13_x86_64", None),  # PyYAML needs 10.15: pure Python
])
def test_the_pyz_carries_the_right_macos_wheels(pyz: Path, py: str, version: tuple[int, int], arch: str,
                                               msgspec_plat: str, yaml_plat: str | None) -> None:
    with lib_zip(pyz) as lib:
        names = [w["file"] for w in json.loads(lib.read("BUILD_INFO"))["wheels"]]
    tags = (py, py, _pyz.mac_platforms(version, arch))
    msgspec = _pyz.select_wheel(names, "msgspec", tags)
    assert msgspec is not None and msgspec.startswith(f"msgspec-0.22.0-{py}-{py}-"), msgspec
    assert msgspec_plat in msgspec
    yaml = _pyz.select_wheel(names, "pyyaml", tags)
    if yaml_plat is None:
        assert yaml is None  # the finder then leaves yaml to the vendored pure-Python package
    else:
        assert yaml is not None and yaml.startswith(f"pyyaml-6.0.4-{py}-{py}-") and yaml_plat in yaml
    # and never a Linux wheel for a Mac
    assert not [n for n in (msgspec, yaml) if n and "linux" in n]


def test_without_a_pyyaml_wheel_the_pure_python_yaml_serves(wheels_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A pyz with no PyYAML wheel for this interpreter (built here without any) imports the
    vendored pure-Python yaml from its lib, and parses manifests all the same."""
    monkeypatch.setattr(build_zipapp, "COMPILED", ("msgspec",))
    pure = tmp_path / "pure.pyz"
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    build_zipapp.build(pure, wheels_dir, pythons=[here], offline=True)
    out = run_probe(sys.executable, pure, cache_env(tmp_path), tmp_path)
    tag = sys.implementation.cache_tag
    assert out["yaml"] == f"{out['lib']}/_pyc/{tag}/yaml/__init__.pyc" and out["libyaml"] is False
    done = subprocess.run([sys.executable, str(pure), "validate", "-r", str(ROOT / "examples" / "registry")],
                          capture_output=True, text=True, env=cache_env(tmp_path))
    assert done.returncode == 0 and "ok: 6 packages" in done.stdout, done.stderr

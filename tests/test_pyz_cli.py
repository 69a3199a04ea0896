"""hpm.pyz as users run it: ``python3 hpm.pyz ...`` on every CPython 3.10-3.13 here.

Each interpreter comes from ~/.pyenv/versions (or is the one running the tests) and has
no hpm beside it: the tests run in a scratch directory, and what the pyz imports is
checked (its archive, its bytecode, its vendored yaml and its unpacked msgspec). The pyz
is built once per session from ``build/wheels`` (``python build_zipapp.py
--download-only`` fills it; ``HPM_WHEELS`` overrides it).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build_zipapp
from tests.support.factory import make_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "registry"
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
PACKAGES = ("hpmtest-pyz-a", "hpmtest-pyz-b", "hpmtest-pyz-c")
HEAVY = ("yaml", "msgspec", "packaging", "hpm_boot.cli", "hpm_boot.install", "hpm_boot.compose.lock")


def python_for(version: str) -> str:
    """An interpreter of ``version``; the test is skipped, naming it, when there is none."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = sorted(
        (Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python3"),
        key=lambda p: tuple(int(x) for x in p.parts[-3].split(".") if x.isdigit()),
    )
    if not found:
        pytest.skip(f"CPython {version} is not installed here (looked in ~/.pyenv/versions)")
    return str(found[-1])


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full multi-platform hpm.pyz, with bytecode for every Python found."""
    wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    out = tmp_path_factory.mktemp("pyz") / "hpm.pyz"
    try:
        build_zipapp.build(out, wheels)
    except build_zipapp.BuildError as exc:
        pytest.fail(f"building hpm.pyz: {exc}; run: python build_zipapp.py --download-only")
    return out


@pytest.fixture(scope="session")
def build_info(pyz: Path) -> dict:
    data = pyz.read_bytes()
    lib = build_zipapp.read_region(data, build_zipapp.read_layout(data)["lib"])
    with zipfile.ZipFile(io.BytesIO(lib)) as zf:
        return json.loads(zf.read("BUILD_INFO"))


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry of three local, non-editable packages (built by uv from source trees)."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "registry").mkdir()
    for name in PACKAGES:
        make_project(root / "packages" / name, name, "1.0.0")
        (root / "registry" / f"{name}.yaml").write_text(
            f"name: {name}\nversion: 1.0.0\n"
            f"sources:\n  prod: {{type: local, path: ../packages/{name}, editable: false}}\n"
        )
    (root / "registry" / "hpm-registry.yaml").write_text(f"defaults:\n  with: [{', '.join(PACKAGES)}]\n")
    return root / "registry"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test environment without HPM_*/XDG_*/PYTHON* settings; a private cache and HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPM_", "XDG_", "PYTHON"))}
    env.update({"HPM_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"), **extra})
    return env


def run(python: str, *args: str, env: dict[str, str], cwd: Path, flags: tuple[str, ...] = ()):
    return subprocess.run([python, *flags, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)  # fmt: skip


# -- the basics, on every Python -----------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_version_and_help(version: str, pyz: Path, build_info: dict, tmp_path: Path) -> None:
    python = python_for(version)
    env = clean_env(tmp_path)
    done = run(python, str(pyz), "--version", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"hpm {build_info['version']} (commit {build_info['commit']})\n"
    assert build_info["commit"] != "unknown"
    done = run(python, str(pyz), "--help", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: hpm") and "self-check" in done.stdout
    assert not (tmp_path / "cache" / "wheels").exists()  # neither needed msgspec
    assert sorted(p.suffix for p in (tmp_path / "cache" / "lib").iterdir()) == [".lock", ".zip"]  # hpm's lib


@pytest.mark.parametrize("version", VERSIONS)
def test_self_check(version: str, pyz: Path, build_info: dict, tmp_path: Path) -> None:
    python = python_for(version)
    env = clean_env(tmp_path, HPM_VENV=str(tmp_path / "venv"), HPM_LOCK_B64="secret-value")
    done = run(python, str(pyz), "self-check", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    tag = f"cp{version.replace('.', '')}"
    assert report["hpm"] == {
        "version": build_info["version"], "commit": build_info["commit"], "archive": str(pyz),
        "bytecode": f"compiled for cpython-{tag[2:]}, shipped in the pyz", "lib": report["hpm"]["lib"],
    }  # fmt: skip
    assert Path(report["hpm"]["lib"]).parent == tmp_path / "cache" / "lib"
    assert report["interpreter"]["version"].startswith(version + ".")
    assert report["interpreter"]["interpreter_tag"] == tag and report["interpreter"]["abi_tag"] == tag
    assert report["msgspec"]["wheel"].startswith(f"msgspec-{build_zipapp.PINS['msgspec']}-{tag}-{tag}-")
    assert report["msgspec"]["would_unpack_into"] == str(tmp_path / "cache")
    assert report["msgspec"]["import"]["ok"] is True
    assert Path(report["msgspec"]["import"]["location"]).is_relative_to(tmp_path / "cache" / "wheels")
    assert report["cache"]["places"][0]["path"] == str(tmp_path / "cache")
    assert report["installers"]["uv"]["version"].startswith("uv ")
    assert report["variables"]["HPM_VENV"] is True and report["variables"]["HPM_LOCK_FILE"] is False
    assert "secret-value" not in done.stdout
    human = run(python, str(pyz), "self-check", env=env, cwd=tmp_path)
    assert human.returncode == 0 and "ok: hpm can work here" in human.stdout
    assert "secret-value" not in human.stdout and "HPM_LOCK_B64 set" in human.stdout


def test_self_check_without_uv_is_69(pyz: Path, tmp_path: Path) -> None:
    for version in VERSIONS:  # an interpreter with no uv beside it or importable
        python = python_for(version)
        if not Path(python).with_name("uv").exists():
            break
    else:
        pytest.skip("every interpreter here has uv beside it")
    env = clean_env(tmp_path, PATH="/nonexistent")
    done = run(python, str(pyz), "self-check", env=env, cwd=tmp_path)
    if "MISSING" not in done.stdout:
        pytest.skip(f"uv is importable as a Python package in {python}: it cannot be hidden")
    assert done.returncode == 69, done.stdout + done.stderr
    assert "hpm cannot work here yet (exit 69)" in done.stdout


def test_self_check_from_an_installed_hpm(tmp_path: Path) -> None:
    done = run(sys.executable, "-m", "hpm_boot", "self-check", "--json", env=clean_env(tmp_path), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["hpm"]["archive"] is None and "wheel" not in report["msgspec"]
    assert report["msgspec"]["import"]["ok"] is True
    # an editable install names the commit of its checkout, as `hpm --version` does
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert head and report["hpm"]["commit"].removesuffix("-dirty") == head, report["hpm"]
    version = run(sys.executable, "-m", "hpm_boot", "--version", env=clean_env(tmp_path), cwd=ROOT)
    assert f"(commit {report['hpm']['commit']})" in version.stdout


@pytest.fixture(scope="session")
def installed_plan() -> str:
    """``plan --json`` of the examples from the installed hpm (the reference output)."""
    done = subprocess.run([sys.executable, "-m", "hpm_boot", "plan", "--json", "-r", str(EXAMPLES)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_validate_and_plan_match_the_installed_hpm(
    version: str, pyz: Path, installed_plan: str, tmp_path: Path
) -> None:
    python = python_for(version)
    env = clean_env(tmp_path)
    done = run(python, str(pyz), "validate", "-r", str(EXAMPLES), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(python, str(pyz), "plan", "--json", "-r", str(EXAMPLES), env=env, cwd=tmp_path,
               flags=("-X", "importtime"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == installed_plan
    imported = _imports(done.stderr)
    assert {"yaml", "msgspec"} <= imported  # the real work ran, from the zip and the cache
    unpacked = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "wheels").iterdir() if p.is_dir())
    assert unpacked == ["msgspec", "pyyaml"]  # PyYAML from its wheel: libyaml


# -- the container hot path ------------------------------------------------------------------


def _imports(importtime: str) -> set[str]:
    """Module names from ``-X importtime`` output."""
    return {
        line.rsplit("|", 1)[1].strip() for line in importtime.splitlines() if line.startswith("import time:")
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_warm_run_imports_nothing_heavy(version: str, pyz: Path, tiny_registry: Path, tmp_path: Path) -> None:
    python = python_for(version)
    lock = subprocess.run(
        [sys.executable, "-m", "hpm_boot", "lock", "--format", "b64", "--python-version", version,
         "-r", str(tiny_registry)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert lock.returncode == 0, lock.stderr
    venv = tmp_path / "venv"
    env = clean_env(tmp_path, HPM_VENV=str(venv), HPM_LOCK_B64=lock.stdout.strip())
    done = run(python, str(pyz), "install", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for entry in (tmp_path / "cache").rglob("*"):  # a cold path may unpack msgspec: start warm anew
        entry.chmod(0o700)
    subprocess.run(["rm", "-rf", str(tmp_path / "cache")], check=True)
    code = "import sys, hpmtest_pyz_a, hpmtest_pyz_c; print(sys.prefix, hpmtest_pyz_a.NAME)"
    done = run(python, str(pyz), "run", "--", "python", "-c", code, env=env, cwd=tmp_path,
               flags=("-X", "importtime"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{venv} hpmtest-pyz-a\n"
    assert "already installed" in done.stderr  # the hot path, not an install
    heavy = {m for m in _imports(done.stderr) if m.split(".")[0] in HEAVY or m in HEAVY}
    assert heavy == set()
    # nor anything that costs a file lookup or a shared library at every start
    assert {"zlib", "__future__", "binascii", "json", "re"} & set(_imports(done.stderr)) == set()
    assert not (tmp_path / "cache").exists()  # nothing unpacked


@pytest.mark.parametrize("markers", [
    "sys_platform == 'win32'",  # decided on the start path (hpm_boot.markers)
    "python_full_version === '2.7.18'",  # decided by packaging, on the CLI path
])
def test_a_pin_with_markers_for_another_platform_runs(markers: str, pyz: Path, tmp_path: Path) -> None:
    """Markers are evaluated without packaging on the start path, where the pyz serves
    none; what only packaging can decide goes to the CLI path, which writes a stamp so
    that the next start is warm. Either way the pin is skipped and the command runs."""
    venv = tmp_path / "venv"  # no packaging in it, nor beside the pyz
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import packaging"], capture_output=True).returncode == 1
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({
        "version": 2, "hpm": "0.1.0", "mode": "prod", "plan_digest": "sha256:" + "0" * 64,
        "targets": [{"python_version": f"{sys.version_info[0]}.{sys.version_info[1]}"}],
        "pins": [{"name": "pywin32-ctypes", "version": "0.2.3", "markers": markers}],
        "packages": [],
    }))
    env = clean_env(tmp_path, HPM_VENV=str(venv))
    for attempt in ("first", "warm"):
        done = run(python, str(pyz), "run", "--lock", str(lock), "--", "true", env=env, cwd=tmp_path,
                   flags=("-X", "importtime"))
        assert done.returncode == 0, (attempt, done.stderr)
        assert "Traceback" not in done.stderr
        cli = "hpm_boot.cli" in _imports(done.stderr)
        assert cli == (attempt == "first" and "===" in markers), attempt
    assert (venv / ".hpm-boot-stamp").is_file()
    assert not (tmp_path / "cache").exists() or "===" in markers  # the start path unpacked nothing


def test_the_issue_s_own_lock_with_a_marker_runs(pyz: Path, tmp_path: Path) -> None:
    """The reproduction as reported: a minimal lock, a venv without packaging."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({
        "version": 2, "targets": [{"python_version": f"{sys.version_info[0]}.{sys.version_info[1]}"}],
        "pins": [{"name": "pywin32-ctypes", "version": "0.2.3", "markers": "sys_platform == 'win32'"}],
        "packages": []}))
    done = run(sys.executable, str(pyz), "run", "--lock", str(lock), "--", "true",
               env=clean_env(tmp_path, HPM_VENV=str(venv)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


# -- damage and odd places --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_bit_flip_in_the_middle_is_a_clear_error(
    version: str, pyz: Path, build_info: dict, tmp_path: Path
) -> None:
    python = python_for(version)
    data = bytearray(pyz.read_bytes())
    tag = next(c["tag"] for v, c in build_info["bytecode"].items() if v == version)
    # the middle of the file, and the middle of this Python's start-path modules
    pieces = build_zipapp.read_layout(bytes(data))["hot"][tag][1][0][1][1]
    for offset in (len(data) // 2, pieces[0][0] + pieces[0][1] // 2):
        bad = bytearray(data)
        bad[offset] ^= 0x20
        path = tmp_path / "bad.pyz"
        path.write_bytes(bad)
        env = clean_env(tmp_path)
        for args in (("--version",), ("plan", "--json", "-r", str(EXAMPLES))):
            done = run(python, str(path), *args, env=env, cwd=tmp_path)
            assert "Traceback" not in done.stderr, done.stderr
            assert done.returncode in (0, 65), done.stderr
            if offset != len(data) // 2:  # this Python's bytecode: always caught by its CRC
                assert done.returncode == 65 and "fail their check" in done.stderr
            if done.returncode == 65:
                assert done.stderr.startswith(f"hpm: the file {path} is damaged") or (
                    done.stderr.startswith("hpm: error:") and "damaged" in done.stderr
                ), done.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_unwritable_cache_falls_back(version: str, pyz: Path, tmp_path: Path) -> None:
    python = python_for(version)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = clean_env(tmp_path, HPM_CACHE=str(blocker / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    done = run(python, str(pyz), "self-check", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert Path(report["msgspec"]["import"]["location"]).is_relative_to(tmp_path / "xdg" / "hpm")
    assert report["cache"]["places"][0]["state"].startswith("absent; cannot be created")


@pytest.fixture(scope="session")
def foreign_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pyz whose only msgspec wheels are for another platform than this machine's."""
    other = "musllinux_aarch64" if os.uname().machine == "x86_64" else "musllinux_x86_64"
    out = tmp_path_factory.mktemp("foreign") / "hpm.pyz"
    wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    build_zipapp.build(out, wheels, None, [other], offline=True)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_no_matching_wheel_fails_only_when_msgspec_is_needed(
    version: str, foreign_pyz: Path, tmp_path: Path
) -> None:
    python = python_for(version)
    env = clean_env(tmp_path)
    assert run(python, str(foreign_pyz), "--version", env=env, cwd=tmp_path).returncode == 0
    done = run(python, str(foreign_pyz), "plan", "--json", "-r", str(EXAMPLES), env=env, cwd=tmp_path)
    assert done.returncode == 66, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"hpm: error: this hpm.pyz has no msgspec wheel for cp{version.replace('.', '')}")
    assert "build_zipapp.py --platform" in first and "Traceback" not in done.stderr
    done = run(python, str(foreign_pyz), "self-check", env=env, cwd=tmp_path)
    assert done.returncode == 66 and "import msgspec  FAILED (exit 66)" in done.stdout

"""Locks that fit real stacks (issue 12), end to end through the CLI, on a wheelhouse
that looks like PyPI: every version as 60 wheels (cp310-cp314 x manylinux/musllinux/
macOS/Windows x x86_64/aarch64/arm64) plus an sdist, each file with its own sha256.

The lock carries per pin only the files its targets can install (uv's pylock.toml picks
them); one lock serves several --python-platform; install uses those hashes; a tampered
file, a foreign target, a pin without a file and an unknown platform are clear errors.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.factory import Pkg, make_pypi_like, make_simple_index, venv_python
from tests.support.registry_cli import pkg, write

ROOT = Path(__file__).resolve().parent.parent
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
CP = f"cp{sys.version_info[0]}{sys.version_info[1]}"
X86, ARM = "x86_64-manylinux_2_28", "aarch64-manylinux_2_28"

PACKAGES = (
    Pkg("hpmtest-app", "1.0.0", deps=("hpmtest-core>=1", "hpmtest-armdep; platform_machine == 'aarch64'")),
    Pkg("hpmtest-core", "1.0.0"),
    Pkg("hpmtest-core", "2.0.0"),
    Pkg("hpmtest-armdep", "1.0.0"),
)


@pytest.fixture(scope="module")
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_pypi_like(tmp_path_factory.mktemp("pypi"), PACKAGES)
    # macOS wheels only, and an sdist: a Linux target gets the sdist
    make_pypi_like(root, [Pkg("hpmtest-srconly", "1.0.0")], platforms=("macosx_11_0_arm64",))
    # macOS wheels only, no sdist: no file at all for a Linux target
    make_pypi_like(root, [Pkg("hpmtest-maconly", "1.0.0")], platforms=("macosx_11_0_arm64",), sdist=False)
    return root


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write(tmp_path / "reg", {f"{n}.yaml": pkg(n) for n in ("hpmtest-app", "hpmtest-srconly",
                                                                   "hpmtest-maconly")})


def hpm(*args: Any, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "hpm_boot", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def lock(registry: Path, pypi: Path, out: Path, *extra: Any, with_: str = "hpmtest-app") -> dict[str, Any]:
    done = hpm("lock", "-r", registry, "--with", with_, "--no-index", "--find-links", pypi, "-o", out, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def uv_installs_pylock(uv_bin: Path, pylock: Path, venv: Path) -> Path:
    """``uv pip install -r pylock.toml`` into a new venv, for real (PEP 751 support is
    behind uv's preview switch); the venv's site-packages."""
    subprocess.run([uv_bin, "venv", "-q", venv], check=True)
    installed = subprocess.run([uv_bin, "pip", "install", "--preview", "--python", venv_python(venv),
                                "-r", pylock], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    return next((venv / "lib").glob("python3.*/site-packages"))


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_fixture_looks_like_pypi(pypi: Path) -> None:
    files = list(pypi.glob("hpmtest_core-2.0.0*"))
    assert len(files) == 61 and len({sha(f) for f in files}) == 61
    assert any(f.name.endswith(".tar.gz") for f in files)


def test_one_target_carries_only_its_files_best_first(registry: Path, pypi: Path, tmp_path: Path) -> None:
    data = lock(registry, pypi, tmp_path / "l.json", "--python-platform", X86)
    assert data["version"] == 2 and data["targets"] == [{"python_version": PY, "python_platform": X86}]
    pins = {p["name"]: p for p in data["pins"]}
    assert set(pins) == {"hpmtest-app", "hpmtest-core"}  # armdep: aarch64 only
    core = pins["hpmtest-core"]
    assert core["version"] == "2.0.0" and "hashes" not in core and "targets" not in core
    # the wheels a manylinux_2_28 x86_64 interpreter accepts, best first; not the 2_39 one,
    # no sdist (a wheel fits), nothing for other Pythons or platforms
    names = [f["name"] for f in core["files"]]
    assert names == [f"hpmtest_core-2.0.0-{CP}-{CP}-manylinux_2_28_x86_64.whl",
                     f"hpmtest_core-2.0.0-{CP}-{CP}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    assert all(f["hash"] == sha(pypi / f["name"]) for f in core["files"])


def test_sdist_only_where_no_wheel_fits(registry: Path, pypi: Path, tmp_path: Path) -> None:
    data = lock(registry, pypi, tmp_path / "l.json", "--python-platform", X86, with_="hpmtest-srconly")
    (pin,) = data["pins"]
    assert [f["name"] for f in pin["files"]] == ["hpmtest_srconly-1.0.0.tar.gz"]
    mac = lock(registry, pypi, tmp_path / "m.json", "--python-platform", "aarch64-apple-darwin",
               with_="hpmtest-srconly")
    assert [f["name"] for f in mac["pins"][0]["files"]] == [
        f"hpmtest_srconly-1.0.0-{CP}-{CP}-macosx_11_0_arm64.whl"]


def test_two_targets_one_lock_says_which_pins_apply(registry: Path, pypi: Path, tmp_path: Path) -> None:
    data = lock(registry, pypi, tmp_path / "l.json", "--python-platform", X86, "--python-platform", ARM)
    assert [t["python_platform"] for t in data["targets"]] == [X86, ARM]
    pins = {p["name"]: p for p in data["pins"]}
    assert pins["hpmtest-armdep"]["targets"] == [1]
    assert "targets" not in pins["hpmtest-core"]
    names = [f["name"] for f in pins["hpmtest-core"]["files"]]
    assert len(names) == 4 and names[0].endswith("manylinux_2_28_x86_64.whl")
    assert sum(n.endswith("_x86_64.whl") for n in names) == 2
    assert sum(n.endswith("_aarch64.whl") for n in names) == 2
    # about 1 KiB of payload a pin per platform at most: no file of another target
    b64 = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--no-index", "--find-links", pypi,
              "--python-platform", X86, "--python-platform", ARM, "--format", "b64")
    assert b64.returncode == 0 and len(b64.stdout) < 2048, b64.stderr
    assert f"for Python {PY} {X86}; Python {PY} {ARM}" in b64.stderr


def test_one_compile_a_target(registry: Path, pypi: Path, tmp_path: Path, uv_bin: Path) -> None:
    """The pins and their files come from one ``uv pip compile --format pylock.toml`` a target."""
    log = tmp_path / "uv-calls.log"
    counting = tmp_path / "uv-counting"
    counting.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {uv_bin} "$@"\n')
    counting.chmod(0o755)
    done = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--no-index", "--find-links", pypi,
               "--python-platform", X86, "--python-platform", ARM, "-o", tmp_path / "l.json",
               env={"HPM_UV": str(counting)})
    assert done.returncode == 0, done.stderr
    compiles = [line for line in log.read_text().splitlines() if line.startswith("pip compile")]
    assert len(compiles) == 2 and all("--format pylock.toml" in line for line in compiles), compiles
    assert [c.split("--python-platform ")[1].split()[0] for c in compiles] == [X86, ARM]


def test_install_from_the_wheelhouse_then_warm_start(registry: Path, pypi: Path, tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    lock(registry, pypi, path, "--python-platform", X86, "--python-platform", ARM)
    venv = tmp_path / "venv"
    env = {"HPM_VENV": str(venv)}
    done = hpm("install", "--lock", path, "--no-index", "--find-links", pypi, env=env)
    if done.returncode == 78:  # this machine is none of the two targets
        assert "do not include this environment" in done.stderr
        pytest.skip("the test machine is neither x86_64 nor aarch64 glibc Linux")
    assert done.returncode == 0, done.stderr
    site = next((venv / "lib").glob("python3.*/site-packages"))
    installed = sorted(p.name for p in site.glob("hpmtest_*.dist-info"))
    import platform

    arm = platform.machine() in ("aarch64", "arm64")
    armdep = ["hpmtest_armdep-1.0.0.dist-info"] if arm else []
    assert installed == ["hpmtest_app-1.0.0.dist-info", *armdep, "hpmtest_core-2.0.0.dist-info"]
    warm = hpm("run", "--lock", path, "--", venv_python(venv), "-c", "import hpmtest_core; print('ok')",
               env={**env, "HPM_LOG": "debug"})
    assert warm.returncode == 0 and warm.stdout.strip() == "ok", warm.stderr
    assert "installing" not in warm.stderr


def test_a_tampered_file_is_74_naming_it_with_nothing_installed(registry: Path, pypi: Path,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    here = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--no-index", "--find-links", pypi,
               "-o", path)
    assert here.returncode == 0, here.stderr
    data = json.loads(path.read_text())
    best = next(p for p in data["pins"] if p["name"] == "hpmtest-core")["files"][0]["name"]
    mirror = tmp_path / "mirror"
    shutil.copytree(pypi, mirror)
    with zipfile.ZipFile(mirror / best, "a") as z:
        z.comment = b"tampered"
    venv = tmp_path / "venv"
    done = hpm("install", "--lock", path, "--no-index", "--find-links", mirror, env={"HPM_VENV": str(venv)})
    assert done.returncode == 74, done.stderr
    error = next(line for line in done.stderr.splitlines() if line.startswith("hpm: error:"))
    assert f"hash mismatch: {mirror / best} is not the file locked for hpmtest-core==2.0.0" in error
    assert "nothing was installed" in error
    assert not list((venv / "lib").glob("python3.*/site-packages/hpmtest_*"))


def test_a_lock_for_other_targets_is_78_naming_both(registry: Path, pypi: Path, tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    lock(registry, pypi, path, "--python-platform", "aarch64-apple-darwin", "--python-platform",
         "x86_64-pc-windows-msvc")
    venv = tmp_path / "venv"
    for argv in (("install", "--lock", path), ("run", "--lock", path, "--", "true")):
        done = hpm(*argv, "--no-index", "--find-links", pypi, env={"HPM_VENV": str(venv)})
        assert done.returncode == 78, done.stderr
        first = next(line for line in done.stderr.splitlines() if line.startswith("hpm: error:"))
        assert (f"the lock's targets (Python {PY} aarch64-apple-darwin; Python {PY} x86_64-pc-windows-msvc) "
                f"do not include this environment (Python {PY}, ") in first
        assert "glibc" in first or "musl" in first or sys.platform != "linux"
        assert "Traceback" not in done.stderr
    assert not list((venv / "lib").glob("python3.*/site-packages/hpmtest_*"))


def test_check_target_takes_the_first_that_fits_and_its_pins() -> None:
    """platforms.check_target, the one decision (warm start, install, the CLI): the first
    target this interpreter fits, with the pins of that target only; none: 78 naming both."""
    from hpm_boot.errors import ResolutionError
    from hpm_boot.platforms import check_target, describe_host, host_platform, host_platform_name

    host = host_platform()
    here = host_platform_name(host)
    lock = {"targets": [{"python_version": PY, "python_platform": "aarch64-apple-darwin"},
                        {"python_version": PY, "python_platform": here}, {"python_version": PY}],
            "pins": [{"name": "mac", "targets": [0]}, {"name": "here", "targets": [1, 2]}, {"name": "all"}]}
    got = check_target(lock, PY)
    assert got["target"] == lock["targets"][1] and [p["name"] for p in got["pins"]] == ["here", "all"]
    with pytest.raises(ResolutionError) as err:
        check_target(lock, "3.9")
    assert err.value.exit_code == 78
    assert err.value.message == (f"the lock's targets (Python {PY} aarch64-apple-darwin; Python {PY} {here}; "
                                 f"Python {PY} (any platform)) do not include this environment "
                                 f"({describe_host('3.9', host)})")
    assert err.value.details == ("make the lock for this environment: hpm lock --python-version 3.9 "
                                 f"--python-platform {here}")


def test_a_pin_without_a_file_for_a_target_is_78(registry: Path, pypi: Path, tmp_path: Path) -> None:
    done = hpm("lock", "-r", registry, "--with", "hpmtest-maconly", "--no-index", "--find-links", pypi,
               "--python-platform", X86, "-o", tmp_path / "l.json")
    assert done.returncode == 78, done.stderr
    assert done.stderr.startswith(f"hpm: error: hpmtest-maconly 1.0.0 has no file for the target Python {PY} "
                                  f"{X86}")
    assert not (tmp_path / "l.json").exists()


@pytest.mark.parametrize("argv, words", [
    (("--python-platform", X86, "--python-platform", "sparc-sunos"), "--python-platform 'sparc-sunos'"),
    (("--python-version", "3.11", "--python-version", "3.12"), "one --python-version"),
])
def test_bad_targets_are_usage_errors(registry: Path, pypi: Path, tmp_path: Path, argv: tuple[str, ...],
                                      words: str) -> None:
    done = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--no-index", "--find-links", pypi, *argv)
    assert done.returncode == 2 and done.stderr.startswith("hpm: error: "), done.stderr
    assert words in done.stderr.splitlines()[0]


def test_index_credentials_are_masked_and_not_in_the_lock(registry: Path, pypi: Path, tmp_path: Path) -> None:
    index = "https://alice:s3cr3t@packages.example.invalid/simple"
    write(registry, {"hpmtest-app.yaml": f"""\
        name: hpmtest-app
        version: 1.0.0
        sources:
          prod: {{type: pypi, index: "{index}"}}
        """})
    path = tmp_path / "l.json"
    done = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--find-links", pypi, "-o", path,
               "--index-url", index)
    assert "s3cr3t" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr  # offline: uv finds everything in --find-links
    text = path.read_text()
    assert "s3cr3t" not in text and "alice" not in text
    assert '"index": "https://packages.example.invalid/simple"' in text
    # the container installs with the package's own index too, credentials from its environment
    venv = tmp_path / "venv"
    done = hpm("install", "--lock", path, "--find-links", pypi,
               env={"HPM_VENV": str(venv), "HPM_LOG": "debug"})
    assert done.returncode == 0, done.stderr
    assert "--extra-index-url https://packages.example.invalid/simple" in done.stderr
    assert "s3cr3t" not in done.stderr


def test_format_pylock_installs_with_uv(registry: Path, pypi: Path, tmp_path: Path, uv_bin: Path) -> None:
    out = tmp_path / "pylock.toml"
    done = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--no-index", "--find-links", pypi,
               "--python-platform", X86, "--python-platform", ARM, "--format", "pylock", "-o", out)
    assert done.returncode == 0, done.stderr
    import tomllib

    doc = tomllib.loads(out.read_text())
    assert doc["lock-version"] == "1.0" and doc["requires-python"] == f">={PY}"
    assert len(doc["environments"]) == 2
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert "platform_machine == 'aarch64'" in pkgs["hpmtest-armdep"]["marker"]
    assert "marker" not in pkgs["hpmtest-core"]
    wheels = pkgs["hpmtest-core"]["wheels"]
    assert len(wheels) == 4 and all(w["hashes"]["sha256"] == sha(pypi / w["name"])[7:] for w in wheels)
    assert json.loads(doc["tool"]["hpm"]["lock"])["targets"][1]["python_platform"] == ARM
    # uv installs it, for real
    site = uv_installs_pylock(uv_bin, out, tmp_path / "venv")
    assert (site / "hpmtest_core-2.0.0.dist-info").is_dir()
    assert (site / "hpmtest_app-1.0.0.dist-info").is_dir()
    # a file name pylock.toml does not allow is a usage error before anything runs
    bad = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--format", "pylock",
              "-o", tmp_path / "x.toml")
    assert bad.returncode == 2 and "pylock.NAME.toml" in bad.stderr


def test_pylock_without_a_good_hash_is_refused() -> None:
    from hpm_boot.compose import lock as lockmod
    from hpm_boot.errors import InstallerFailedError

    base = 'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\n'
    for wheel, words in (('{ url = "https://h/x-1-py3-none-any.whl" }', "has no sha256 hash"),
                         ('{ url = "https://u:pw@h/x-1-py3-none-any.whl", hashes = { sha256 = "zz" } }',
                          "has a malformed sha256 hash")):
        with pytest.raises(InstallerFailedError) as err:
            lockmod.pylock_pins(lockmod.parse_pylock(base + f"wheels = [{wheel}]\n"))
        assert words in err.value.message and "pw" not in err.value.message
        assert err.value.message.startswith("pylock.toml: x 1: the file x-1-py3-none-any.whl")


def test_the_default_target_is_named_and_a_payload_made_off_linux_warns(
    registry: Path, pypi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hpm_boot import cli
    from hpm_boot.platforms import host_platform, host_platform_name

    base = ["lock", "-r", str(registry), "--with", "hpmtest-app", "--no-index", "--find-links", str(pypi)]
    assert cli.main([*base, "-o", str(tmp_path / "l.json")], {}) == 0
    here = host_platform_name(host_platform())
    assert f"for Python {PY} {here} (" in capsys.readouterr().err
    monkeypatch.setattr(sys, "platform", "darwin")  # a macOS laptop locking for a Linux image
    assert cli.main([*base, "--format", "b64"], {}) == 0
    err = capsys.readouterr().err
    assert "hpm: warning: no --python-platform: locked for this machine (" in err and "-apple-darwin" in err
    assert cli.main([*base, "--format", "b64", "--python-platform", X86], {}) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_local_simple_index_like_pypi_and_a_tampered_file_in_it(registry: Path, pypi: Path,
                                                                   tmp_path: Path) -> None:
    """The same lock from an index (PEP 503, hashes in the links) as from the wheelhouse,
    installed from it; a mirror whose file differs from the locked one is 74."""
    index = make_simple_index(pypi, tmp_path / "index")
    from_wheelhouse = lock(registry, pypi, tmp_path / "w.json")
    path = tmp_path / "i.json"
    done = hpm("lock", "-r", registry, "--with", "hpmtest-app", "--index-url", index, "-o", path)
    assert done.returncode == 0, done.stderr
    from_index = json.loads(path.read_text())
    assert from_index["pins"] == from_wheelhouse["pins"]
    done = hpm("install", "--lock", path, "--index-url", index, env={"HPM_VENV": str(tmp_path / "v1")})
    assert done.returncode == 0, done.stderr
    core = next(p for p in from_index["pins"] if p["name"] == "hpmtest-core")
    best = core["files"][0]["name"]
    with zipfile.ZipFile(tmp_path / "index" / "files" / best, "a") as z:
        z.comment = b"tampered"
    venv = tmp_path / "v2"
    done = hpm("install", "--lock", path, "--index-url", index,
               env={"HPM_VENV": str(venv), "UV_CACHE_DIR": str(tmp_path / "fresh-cache")})
    assert done.returncode == 74, done.stderr
    error = next(line for line in done.stderr.splitlines() if line.startswith("hpm: error:"))
    assert "hash mismatch" in error and best in error and "nothing was installed" in error
    assert not list((venv / "lib").glob("python3.*/site-packages/hpmtest_*"))


def test_format_pylock_with_a_git_source_installs_with_uv(pypi: Path, tmp_path: Path, uv_bin: Path,
                                                            git_plugin: Any) -> None:
    reg = write(tmp_path / "reg", {"hpmtest-gitplugin.yaml": f"""\
        name: hpmtest-gitplugin
        version: 0.1.0
        sources:
          prod: {{type: git, url: "{git_plugin.url}", ref: v0.1.0}}
        """})
    out = tmp_path / "pylock.toml"
    done = hpm("lock", "-r", reg, "--with", "hpmtest-gitplugin", "--no-index", "--find-links", pypi,
               "--format", "pylock", "-o", out)
    assert done.returncode == 0, done.stderr
    import tomllib

    pkgs = {p["name"]: p for p in tomllib.loads(out.read_text())["packages"]}
    assert pkgs["hpmtest-gitplugin"]["vcs"]["commit-id"] == git_plugin.tags["v0.1.0"]
    site = uv_installs_pylock(uv_bin, out, tmp_path / "venv")
    assert (site / "hpmtest_gitplugin-0.1.0.dist-info").is_dir()
    assert (site / "hpmtest_core-2.0.0.dist-info").is_dir()

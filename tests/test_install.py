"""hpm install / hpm run end to end: lock sources, target environments, installers.

Real uv, real venvs, wheels and git repos made by the tests, ``--no-index --find-links``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.factory import make_venv, run_uv
from tests.support.hpm_venv import hpm_in_venv
from tests.support.nobody import NOBODY, SYSTEM_PYTHON, shared_tmpdir, skip_unless_nobody_can_run_python
from tests.support.world import (
    HPM,
    World,
    b64_of,
    probe_of,
    uv_calls,
    world,
    write_exe,
)

__all__ = ["world"]


def _dists(probe: dict) -> dict[str, str]:
    return {k: v["version"] for k, v in probe["dists"].items() if k.startswith("hpmtest")}


def _first_error_line(stderr: str) -> str:
    """The first ``hpm: error:`` line of hpm's stderr (fails the test when there is none)."""
    return next(ln for ln in stderr.splitlines() if ln.startswith("hpm: error:"))


# ---------------------------------------------------------------- lock sources


def test_lock_file_into_fresh_hpm_venv_one_transaction(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app", "hpmtest-gitplugin", "hpmtest-extra")
    uv, log = world.counting_uv()
    venv = world.tmp / "venv"
    proc, probe = world.run_probe("--lock", str(lock), env={"HPM_VENV": str(venv), "HPM_UV": str(uv)})
    assert probe["exe"] == str(venv / "bin" / "python")
    assert probe["env"]["VIRTUAL_ENV"] == str(venv)
    assert probe["env"]["PATH"].split(os.pathsep)[0] == str(venv / "bin")
    assert _dists(probe) == {
        "hpmtest-app": "1.0.0",
        "hpmtest-core": "2.0.0",
        "hpmtest-gitplugin": "0.1.0",
        "hpmtest-extra": "1.0.0",
        "hpmtest-dep": "1.0.0",
    }  # dep: extras [fast]
    # git installed at the locked SHA (the repo's HEAD is v0.2.0)
    direct = probe["dists"]["hpmtest-gitplugin"]["direct_url"]
    assert direct["vcs_info"]["commit_id"] == world.git.tags["v0.1.0"]
    installs = uv_calls(log)
    assert len(installs) == 1, installs  # one transaction for five distributions
    assert "--no-deps" in installs[0] and f"--python {venv}/bin/python" in installs[0]
    assert "--require-hashes" not in installs[0]  # the git pin has no hash
    assert len(uv_calls(log, "venv")) == 1
    assert "hpm: installed 5 packages in" in proc.stderr


def test_cold_install_from_a_json_lock_file_imports_little(world: World) -> None:
    """A plain JSON lock needs none of a payload's codecs; uv's line for a git pin
    (``git+file://.../repo@<commit>``) holds an ``@`` but nothing to mask, and the stamp
    splits an entrypoint without quotes at its spaces: no ``re``."""
    world.standard_registry()
    lock = world.lock("hpmtest-gitplugin", "hpmtest-extra")
    proc = subprocess.run(
        [HPM[0], "-X", "importtime", *HPM[1:], "install", "--lock", str(lock), *world.index()],
        env={**world.env, "HPM_VENV": str(world.tmp / "venv")}, capture_output=True, text=True, cwd=world.tmp,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gitplugin@" in proc.stderr and "hpm: installed 4 packages in" in proc.stderr
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "hpm_boot.install" in imported
    heavy = {"binascii", "zlib", "_sha256", "_sha2", "hashlib", "encodings.utf_8_sig", "re", "shlex", "json",
             "subprocess"}
    assert not heavy & imported, proc.stderr


def test_require_hashes_when_every_pin_has_one(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app", "hpmtest-extra")
    assert all(p.get("files") for p in json.loads(lock.read_text())["pins"])
    uv, log = world.counting_uv()
    proc = world.hpm(
        "install", "--lock", lock, *world.index(), env={"HPM_VENV": str(world.tmp / "v"), "HPM_UV": str(uv)}
    )
    assert proc.returncode == 0, proc.stderr
    (call,) = uv_calls(log)
    assert "--require-hashes" in call


def test_source_order_lock_flag_file_b64_registry(world: World) -> None:
    world.standard_registry()
    world.manifest(
        "hpmtest-qdrant",
        'name: hpmtest-qdrant\nversion: 0.1.0\nsources:\n  prod: {type: pypi, version: "==0.1.0"}\n',
    )
    lock_q = world.lock("hpmtest-qdrant", out="q.json")  # core 1.1.0
    lock_a = world.lock("hpmtest-app", out="a.json")  # core 2.0.0
    b64_q = b64_of(lock_q)

    def seen(name: str, *pre: str, **env: str) -> dict[str, str]:
        _, probe = world.run_probe(*pre, env={"HPM_VENV": str(world.tmp / name), **env})
        return _dists(probe)

    # --lock beats HPM_LOCK_FILE and HPM_LOCK_B64
    assert "hpmtest-app" in seen("v1", "--lock", str(lock_a), HPM_LOCK_FILE=str(lock_q))
    assert "hpmtest-app" in seen("v2", "--lock", str(lock_a), HPM_LOCK_B64=b64_q)
    # HPM_LOCK_FILE, then HPM_LOCK_B64, beat the registry
    assert "hpmtest-qdrant" in seen(
        "v3", "-r", str(world.registry), "--with", "hpmtest-app", HPM_LOCK_FILE=str(lock_q)
    )
    got = seen("v4", "-r", str(world.registry), "--with", "hpmtest-app", HPM_LOCK_B64=b64_q)
    assert got == {"hpmtest-qdrant": "0.1.0", "hpmtest-core": "1.1.0"}
    # both variables: usage error
    proc = world.hpm("run", "--", "true", env={"HPM_LOCK_FILE": str(lock_a), "HPM_LOCK_B64": b64_q})
    assert proc.returncode == 2 and "set only one" in proc.stderr
    # no lock: the registry, resolved on the spot
    got = seen("v5", "-r", str(world.registry), "--with", "hpmtest-qdrant")
    assert got == {"hpmtest-qdrant": "0.1.0", "hpmtest-core": "1.1.0"}


def test_registry_mode_from_flag_and_run_mode(world: World) -> None:
    checkout = world.editable_package(value=7)
    reg = ("-r", str(world.registry), "--with", "hpmtest-edit")
    _, dev = world.run_probe(
        *reg, env={"HPM_VENV": str(world.tmp / "dev"), "RUN_MODE": "dev", "PROBE_IMPORT": "hpmtest_edit"}
    )
    assert dev["mods"] == {"hpmtest_edit": 7}
    direct = dev["dists"]["hpmtest-edit"]["direct_url"]
    assert direct["dir_info"] == {"editable": True} and direct["url"] == checkout.resolve().as_uri()
    _, prod = world.run_probe(
        *reg, "--mode", "prod", env={"HPM_VENV": str(world.tmp / "prod"), "RUN_MODE": "dev"}
    )
    assert "hpmtest-edit" not in prod["dists"] and "hpmtest-dep" in prod["dists"]


def test_python_flag_installs_into_that_interpreter(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    py = make_venv(world.tmp / "other")
    uv, log = world.counting_uv()
    _, probe = world.run_probe("--lock", str(lock), "--python", str(py), env={"HPM_UV": str(uv)})
    assert probe["exe"] == str(py)
    assert _dists(probe) == {"hpmtest-app": "1.0.0", "hpmtest-core": "2.0.0"}
    (call,) = uv_calls(log)
    assert f"--python {py}" in call


def test_system_interpreter_is_the_target(world: World) -> None:
    """No HPM_VENV, no --python: uv installs into the interpreter that runs hpm."""
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    py = hpm_in_venv(world.tmp / "sys")
    uv, log = world.counting_uv()
    proc = world.hpm(
        "run",
        "--lock",
        lock,
        *world.index(),
        "--",
        "python",
        world.probe,
        env={"HPM_UV": str(uv)},
        python=str(py),
    )
    assert proc.returncode == 0, proc.stderr
    probe = probe_of(proc.stdout)
    assert probe["exe"] == str(py)
    assert _dists(probe) == {"hpmtest-app": "1.0.0", "hpmtest-core": "2.0.0"}
    (call,) = uv_calls(log)
    assert f"--python {py}" in call and "--break-system-packages" not in call
    assert next((world.tmp / "sys" / "lib").glob("python3.*/site-packages/hpmtest_app-1.0.0.dist-info"))


# ---------------------------------------------------------------- pip and conda


CONDA_MANIFEST = """\
name: {name}
version: {version}
sources:
  prod: {{type: pypi, version: "=={version}"}}
install_args: {{manager: conda}}
"""

PIP_MANIFEST = """\
name: hpmtest-milvus
version: 0.1.0
sources:
  prod: {type: pypi, version: "==0.1.0"}
install_args: {manager: pip}
"""


@pytest.mark.parametrize("manifest", ["hpmtest-milvus", "vector-milvus"])
def test_pip_manager_in_a_seeded_venv(world: World, manifest: str) -> None:
    """Also for a manifest named otherwise than its distribution: its pins still go to pip."""
    world.standard_registry()
    text = PIP_MANIFEST.replace("name: hpmtest-milvus", f"name: {manifest}").replace(
        "{type: pypi,", "{type: pypi, package: hpmtest-milvus,")
    world.manifest(manifest, text)
    lock = world.lock("hpmtest-app", manifest)
    venv = world.tmp / "seeded"  # python -m venv seeds pip offline (ensurepip's bundled wheel)
    subprocess.run([sys._base_executable, "-m", "venv", venv], check=True, capture_output=True)
    uv, log = world.counting_uv()
    proc, probe = world.run_probe("--lock", str(lock), env={"HPM_VENV": str(venv), "HPM_UV": str(uv)})
    assert _dists(probe) == {
        "hpmtest-app": "1.0.0",
        "hpmtest-core": "2.0.0",
        "hpmtest-milvus": "0.1.0",
        "hpmtest-dep": "1.0.0",
    }
    assert len(uv_calls(log)) == 1  # the uv transaction: everything but hpmtest-milvus
    assert "installing with pip: 1 requirement(s)" in proc.stderr
    installer = (venv / "lib").glob("python3.*/site-packages/hpmtest_milvus-0.1.0.dist-info/INSTALLER")
    assert next(installer).read_text().strip() == "pip"


def test_pip_manager_without_pip_is_69(world: World) -> None:
    world.manifest("hpmtest-milvus", PIP_MANIFEST)
    lock = world.lock("hpmtest-milvus")
    proc = world.hpm("install", "--lock", lock, *world.index(), env={"HPM_VENV": str(world.tmp / "nopip")})
    assert proc.returncode == 69, proc.stderr
    assert "has no pip" in proc.stderr


def test_conda_manager_uses_the_conda_on_path(world: World) -> None:
    fake = world.tmp / "condabin"
    fake.mkdir()
    calls = world.tmp / "conda-calls.json"
    write_exe(
        fake / "conda",
        f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open({str(calls)!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
prefix = args[args.index("--prefix") + 1]
os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
for spec in args[args.index("--prefix") + 2:]:
    if spec.startswith("-"):
        continue
    name, _, version = spec.partition("==")
    open(os.path.join(prefix, "conda-meta", f"{{name}}-{{version}}-0.json"), "w").write("{{}}")
""",
    )
    world.manifest("libfoo", CONDA_MANIFEST.format(name="libfoo", version="1.2.3"))
    world.manifest("libbar", CONDA_MANIFEST.format(name="libbar", version="0.5.0"))
    world.standard_registry()
    lock = world.lock("libfoo", "libbar", "hpmtest-app")
    venv = world.tmp / "cv"
    env = {"HPM_VENV": str(venv), "PATH": f"{fake}{os.pathsep}{world.env['PATH']}"}
    _, probe = world.run_probe("--lock", str(lock), env=env)
    assert _dists(probe) == {"hpmtest-app": "1.0.0", "hpmtest-core": "2.0.0"}
    (argv,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv == ["install", "--yes", "--prefix", str(venv), "libbar==0.5.0", "libfoo==1.2.3"]
    # satisfied now: a second run asks conda for nothing
    world.run_probe("--lock", str(lock), env=env)
    assert len(calls.read_text().splitlines()) == 1


def test_conda_missing_is_69(world: World) -> None:
    world.manifest("libfoo", CONDA_MANIFEST.format(name="libfoo", version="1.2.3"))
    lock = world.lock("libfoo")
    path = os.path.dirname(sys.executable) + ":/usr/bin:/bin"
    proc = world.hpm("install", "--lock", lock, env={"HPM_VENV": str(world.tmp / "v"), "PATH": path})
    assert proc.returncode == 69, proc.stderr
    assert "conda, mamba, micromamba" in proc.stderr


# ---------------------------------------------------------------- bad input


def test_installer_missing_is_69(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    proc = world.hpm(
        "install",
        "--lock",
        lock,
        env={"HPM_UV": str(world.tmp / "no-such-uv"), "HPM_VENV": str(world.tmp / "v")},
    )
    assert proc.returncode == 69, proc.stderr
    assert proc.stderr.startswith("hpm: lock from") and "hpm: error: HPM_UV=" in proc.stderr


def test_installer_failure_is_74_masked_and_not_a_success(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    make_venv(world.tmp / "v")
    bad = write_exe(
        world.tmp / "bad-uv",
        "#!/bin/sh\necho 'Resolved 2 packages'\n"
        "echo 'error: cannot fetch https://alice:s3cret@pypi.example.com/simple/x' >&2\nexit 1\n",
    )
    tlog = world.tmp / "termination-log"
    tlog.write_text("")
    proc = world.hpm(
        "install",
        "--lock",
        lock,
        env={"HPM_UV": str(bad), "HPM_VENV": str(world.tmp / "v"), "HPM_TERMINATION_LOG": str(tlog)},
    )
    assert proc.returncode == 74, proc.stderr
    assert "s3cret" not in proc.stderr and "https://***@pypi.example.com" in proc.stderr
    assert "hpm: error: uv failed (exit 1): error: cannot fetch https://***@pypi.example.com" in proc.stderr
    assert "installed" not in proc.stderr.replace("not installed", "")
    assert tlog.read_text().startswith("hpm: uv failed (exit 1)") and "s3cret" not in tlog.read_text()
    assert len(tlog.read_text().splitlines()) == 1


def test_installer_that_lies_is_caught_by_the_verification(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    liar = write_exe(
        world.tmp / "liar-uv",
        f'#!/bin/sh\ncase "$1" in venv) exec {world.uv} "$@";; esac\necho \'Installed 2 packages\'\nexit 0\n',
    )
    proc = world.hpm("install", "--lock", lock, env={"HPM_UV": str(liar), "HPM_VENV": str(world.tmp / "v")})
    assert proc.returncode == 74 and "still missing" in proc.stderr


def test_package_not_in_the_wheelhouse_is_74(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    data = json.loads(lock.read_text())
    data["pins"].append({"name": "hpmtest-nope", "version": "1.0.0"})
    lock.write_text(json.dumps(data))
    proc = world.hpm("install", "--lock", lock, *world.index(), env={"HPM_VENV": str(world.tmp / "v")})
    assert proc.returncode == 74, proc.stderr
    assert "hpm: error: uv failed" in proc.stderr and "hpmtest-nope" in proc.stderr


def test_offline_with_a_cold_cache_is_74(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    proc = world.hpm(
        "install",
        "--lock",
        lock,
        "--offline",
        env={"HPM_VENV": str(world.tmp / "v"), "UV_CACHE_DIR": str(world.tmp / "cold-cache")},
    )
    assert proc.returncode == 74, proc.stderr
    line = _first_error_line(proc.stderr)
    assert "offline" in line and "hpmtest" in line


def test_offline_hint_only_for_what_offline_kept_away(tmp_path: Path) -> None:
    """uv names its cache directory in most failures: that alone is no offline problem."""
    import pytest

    from hpm_boot.errors import InstallerFailedError
    from hpm_boot.install import run_installer
    from hpm_boot.log import Log

    cases = {
        "build": "error: Failed to build `x @ file:///src/x`\n  cause: see /root/.cache/uv/sdists-v9/x\n",
        "offline": "error: No solution found when resolving dependencies\n  cause: Because x was not "
                   "found in the cache and you require x==1, we can conclude that your requirements "
                   "are unsatisfiable.\n\nhint: Packages were unavailable because the network was "
                   "disabled.\n",
    }
    hints = {}
    for name, output in cases.items():
        (tmp_path / f"{name}.txt").write_text(output)
        fake = write_exe(tmp_path / f"{name}-uv", f"#!/bin/sh\ncat {tmp_path / name}.txt\nexit 2\n")
        with pytest.raises(InstallerFailedError) as info:
            run_installer([str(fake), "pip", "install", "--offline"], "uv", {}, Log({"HPM_LOG": "quiet"}))
        hints[name] = "(offline:" in info.value.message
    assert hints == {"build": False, "offline": True}


def test_git_commit_not_found_is_74(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-gitplugin")
    text = lock.read_text().replace(world.git.tags["v0.1.0"], "0123456789abcdef0123456789abcdef01234567")
    lock.write_text(text)
    proc = world.hpm("install", "--lock", lock, *world.index(), env={"HPM_VENV": str(world.tmp / "v")})
    assert proc.returncode == 74, proc.stderr
    line = _first_error_line(proc.stderr)
    assert "uv failed" in line and "hpmtest-gitplugin" in line


def test_hpm_venv_pointing_at_a_file_is_73(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    (world.tmp / "afile").write_text("x")
    uv, log = world.counting_uv()
    proc = world.hpm(
        "run", "--lock", lock, "--", "true", env={"HPM_VENV": str(world.tmp / "afile"), "HPM_UV": str(uv)}
    )
    assert proc.returncode == 73, proc.stderr
    assert "is a file" in proc.stderr and not log.exists()


def test_not_writable_target_without_hpm_venv_is_73(world: World) -> None:
    """As uid 65534 (setpriv) a venv owned by root is read-only: 73 with the hint, before uv runs."""
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    skip_unless_nobody_can_run_python()
    with shared_tmpdir() as shared:  # pytest's tmp dirs are private to root
        shared_lock = shutil.copy(lock, shared / "lock.json")
        Path(shared_lock).chmod(0o644)
        sysvenv = hpm_in_venv(shared / "sysvenv", SYSTEM_PYTHON)  # hpm runs from here, as nobody
        target = make_venv(shared / "rootvenv", SYSTEM_PYTHON)
        env = {**world.env, "HOME": "/nonexistent", "HPM_UV": str(world.forbidden_uv()[0] / "uv")}
        wheels = shutil.copytree(world.wheelhouse, shared / "wh")
        Path(wheels).chmod(0o755)
        hpm = [
            *NOBODY,
            str(sysvenv),
            "-m",
            "hpm_boot",
            "run",
            "--lock",
            str(shared_lock),
            "--no-index",
            "--find-links",
            str(wheels),
        ]
        # --python names a venv owned by root
        proc = subprocess.run(
            [*hpm, "--python", str(target), "--", "true"], env=env, capture_output=True, text=True, cwd="/"
        )
        assert proc.returncode == 73, proc.stderr
        assert "not writable by uid 65534" in proc.stderr and "write access to" in proc.stderr
        # the interpreter running hpm is the target: the hint names HPM_VENV
        proc = subprocess.run([*hpm, "--", "true"], env=env, capture_output=True, text=True, cwd="/")
        assert proc.returncode == 73, proc.stderr
        first = proc.stderr.splitlines()[1]
        assert first.startswith("hpm: error: cannot install into") and "not writable by uid 65534" in first
        assert "set HPM_VENV=" in proc.stderr
        # ... and with HPM_VENV on a writable volume, the same user succeeds
        volume = shared / "volume"
        volume.mkdir()
        os.chown(volume, 65534, 65534)
        env["HPM_UV"] = str(world.uv)
        env["UV_CACHE_DIR"] = str(volume / "cache")
        proc = subprocess.run(
            [*hpm, "--", "python", "-c", "import hpmtest_app, sys; print(sys.prefix)"],
            env={**env, "HPM_VENV": str(volume / "venv")},
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(volume / "venv")
        assert not (world.tmp / "installer-was-called").exists()


def test_lock_for_another_python_or_platform_is_78_before_installing(world: World) -> None:
    world.standard_registry()
    uv, log = world.counting_uv()
    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    lock = world.lock("hpmtest-app", out="other.json", extra=("--python-version", other))
    py = make_venv(world.tmp / "t")
    proc = world.hpm(
        "run", "--lock", lock, "--python", py, *world.index(), "--", "true", env={"HPM_UV": str(uv)}
    )
    assert proc.returncode == 78, proc.stderr
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    first = proc.stderr.splitlines()[-2]
    assert first.startswith(f"hpm: error: the lock's targets (Python {other} ") and not log.exists()
    assert f"do not include this environment (Python {here}, linux " in first
    assert " glibc " in first or " musl " in first
    data = json.loads(world.lock("hpmtest-app", out="mac.json").read_text())
    data["targets"][0]["python_platform"] = "aarch64-apple-darwin"
    (world.tmp / "mac.json").write_text(json.dumps(data))
    proc = world.hpm("install", "--lock", world.tmp / "mac.json", "--python", py, env={"HPM_UV": str(uv)})
    assert proc.returncode == 78 and f"(Python {here} aarch64-apple-darwin)" in proc.stderr
    assert not log.exists()
    assert not list((world.tmp / "t" / "lib").glob("python3.*/site-packages/hpmtest_*"))


def test_hpm_install_is_idempotent_and_quiet_second_time(world: World) -> None:
    world.standard_registry()
    lock = world.lock("hpmtest-app")
    uv, log = world.counting_uv()
    env = {"HPM_VENV": str(world.tmp / "v"), "HPM_UV": str(uv)}
    assert world.hpm("install", "--lock", lock, *world.index(), env=env).returncode == 0
    proc = world.hpm("install", "--lock", lock, *world.index(), env=env)
    assert proc.returncode == 0 and "already installed; nothing to do" in proc.stderr
    assert len(uv_calls(log)) == 1
    run_uv("pip", "uninstall", "--python", world.tmp / "v" / "bin" / "python", "hpmtest-core")
    proc = world.hpm("install", "--lock", lock, *world.index(), env=env)
    assert proc.returncode == 0 and "installed 1 packages" in proc.stderr

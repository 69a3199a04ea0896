"""``hpm lock`` and ``hpm decode`` end to end, through the CLI (issue 3).

Hermetic: wheels come from a factory wheelhouse (``--no-index --find-links``), git
sources are local ``file://`` repositories, registries are written into tmp dirs. The
CLI runs in-process (``cli.main(argv, env)``) so exit codes, stdout and stderr are
checked directly; a few cases also run ``python -m hpm_boot`` as a real process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpm_boot import cli, payload
from hpm_boot.compose import lock as lockmod
from tests.support.factory import GitRepo, Pkg, git, make_git_repo, make_project, make_wheelhouse
from tests.support.world import write_exe

ROOT = Path(__file__).resolve().parent.parent
KEY = "lock-signing-key-for-tests"


# --------------------------------------------------------------------------- helpers


class Result:
    """Exit code and output of one CLI run."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def first(self) -> str:
        """The first line on stderr: the one-line error or warning."""
        return self.err.splitlines()[0] if self.err else ""

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[:300]!r}, err={self.err[:600]!r})"


Run = Callable[..., Result]


@pytest.fixture
def hpm(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process: ``hpm("lock", "-r", dir, env={...})``."""

    def run(*argv: Any, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> Result:
        capsys.readouterr()
        environ = {k: v for k, v in os.environ.items() if k not in unset}
        environ.update(env or {})
        code = cli.main([str(a) for a in argv], environ)
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


def fails(result: Result, code: int, *words: str) -> None:
    """The run failed with ``code``, one ``hpm: error:`` line first naming ``words``."""
    assert result.code == code, result
    assert result.first.startswith("hpm: error: "), result
    assert "Traceback" not in result.err, result
    for word in words:
        assert word in result.first, (word, result)


def manifest(reg: Path, name: str, prod: dict[str, Any], version: str = "1.0.0",
             dev: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write ``reg/NAME.yaml``."""
    reg.mkdir(parents=True, exist_ok=True)
    sources = {"prod": prod, **({"dev": dev} if dev else {})}
    data = {"name": name, "version": version, "sources": sources, **extra}
    path = reg / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def pypi(version: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "pypi", **({"version": version} if version else {}), **extra}


def read_lock(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def pins_by_name(lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in lock["pins"]}


def packages_by_name(lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in lock["packages"]}


@pytest.fixture
def wh_args(wheelhouse: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse)]


@pytest.fixture
def annotated(tmp_path: Path) -> GitRepo:
    """``hpmtest-gitann`` with the annotated tag v1.0.0."""
    return make_git_repo(tmp_path / "hpmtest-gitann", "hpmtest-gitann", tags=["v1.0.0"], annotated=True)


@pytest.fixture
def registry(tmp_path: Path, git_plugin: GitRepo, annotated: GitRepo) -> Path:
    """A prod registry: an app from the wheelhouse that needs two git plugins."""
    reg = tmp_path / "registry"
    manifest(reg, "hpmtest-app", pypi(), requires={"hpmtest-gitplugin": "*", "hpmtest-gitann": "*"},
             entrypoints={"serve": "hpmtest-app --port 8001"})
    manifest(reg, "hpmtest-gitplugin", {"type": "git", "url": git_plugin.url, "ref": "v0.1.0"},
             version="0.1.0")
    manifest(reg, "hpmtest-gitann", {"type": "git", "url": annotated.url, "ref": "v1.0.0"})
    return reg


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory (where hpm.lock.json lands by default)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def lock_json(hpm: Run, registry: Path, wh_args: list[str], *extra: Any) -> dict[str, Any]:
    out = Path("hpm.lock.json")
    result = hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args, *extra)
    assert result.code == 0, result
    return read_lock(out)


# --------------------------------------------------------------------------- 1. the lock


def test_lock_writes_pinned_closure_with_hashes_and_git_shas(
    hpm: Run, registry: Path, wh_args: list[str], wheelhouse: Path, workdir: Path,
    git_plugin: GitRepo, annotated: GitRepo,
) -> None:
    lock = lock_json(hpm, registry, wh_args)
    assert lock["version"] == 2 and lock["mode"] == "prod"
    here = lockmod.default_target(None, None)  # the host's, named: explicit in the lock
    assert lock["targets"] == [{"python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
                                "python_platform": here.python_platform}]
    pins = pins_by_name(lock)
    assert set(pins) == {"hpmtest-app", "hpmtest-core", "hpmtest-gitplugin", "hpmtest-gitann"}
    # wheelhouse pins: exact versions, the sha256 of the very wheel file
    for name, version in (("hpmtest-app", "1.0.0"), ("hpmtest-core", "2.0.0")):
        assert pins[name]["version"] == version
        wheel = wheelhouse / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        assert pins[name]["files"] == [{"name": wheel.name,
                                        "hash": "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()}]
        assert "hashes" not in pins[name]
    # git: full commit SHAs; the annotated tag peeled to its commit, not the tag object
    tag_object = git(annotated.path, "rev-parse", "v1.0.0")
    commit = annotated.tags["v1.0.0"]
    assert tag_object != commit
    pkgs = packages_by_name(lock)
    assert pkgs["hpmtest-gitann"]["commit"] == commit
    assert pkgs["hpmtest-gitann"]["ref"] == "v1.0.0"
    assert pins["hpmtest-gitann"]["url"] == f"git+{annotated.url}@{commit}"
    assert pkgs["hpmtest-gitplugin"]["commit"] == git_plugin.tags["v0.1.0"]
    assert pins["hpmtest-gitplugin"]["url"] == f"git+{git_plugin.url}@{git_plugin.tags['v0.1.0']}"
    assert "version" not in pins["hpmtest-gitplugin"] and "hashes" not in pins["hpmtest-gitplugin"]
    assert pkgs["hpmtest-app"]["entrypoints"] == {"serve": "hpmtest-app --port 8001"}
    assert pkgs["hpmtest-app"]["requirement"] == "hpmtest-app==1.0.0"
    # what `hpm lock` wrote is a valid lock
    assert lockmod.from_dict(lock, "hpm.lock.json").plan_digest.startswith("sha256:")


@pytest.mark.parametrize("ref", ["main", "sha"])
def test_git_branch_and_direct_sha(
    hpm: Run, tmp_path: Path, git_plugin: GitRepo, wh_args: list[str], workdir: Path, ref: str
) -> None:
    head = git(git_plugin.path, "rev-parse", "main")
    assert head == git_plugin.tags["v0.2.0"]
    given = git_plugin.tags["v0.1.0"] if ref == "sha" else "main"
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-gitplugin", {"type": "git", "url": git_plugin.url, "ref": given})
    result = hpm("lock", "-r", reg, "--with", "hpmtest-gitplugin", *wh_args)
    assert result.code == 0, result
    lock = read_lock(workdir / "hpm.lock.json")
    want = git_plugin.tags["v0.1.0"] if ref == "sha" else head
    assert packages_by_name(lock)["hpmtest-gitplugin"]["commit"] == want
    assert pins_by_name(lock)["hpmtest-gitplugin"]["url"].endswith("@" + want)
    assert pins_by_name(lock)["hpmtest-core"]["version"] == "2.0.0"


def test_dev_lock_records_paths_and_warns(
    hpm: Run, tmp_path: Path, wh_args: list[str], workdir: Path
) -> None:
    checkout = make_project(tmp_path / "checkouts" / "edit-src", "hpmtest-edit", "0.3.0",
                            deps=["hpmtest-dep"])
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-edit", pypi(), version="0.3.0",
             dev={"type": "local", "path": "../checkouts/edit-src", "editable": True})
    result = hpm("lock", "-r", reg, "--with", "hpmtest-edit", "--mode", "dev", *wh_args)
    assert result.code == 0, result
    assert "hpm: warning: this lock has local paths (hpmtest-edit)" in result.err
    assert "mounted" in result.err
    lock = read_lock(workdir / "hpm.lock.json")
    assert lock["mode"] == "dev"
    pkg = packages_by_name(lock)["hpmtest-edit"]
    assert pkg["source"] == "local" and pkg["source_mode"] == "dev" and pkg["editable"] is True
    assert pkg["path"] == str(checkout) and os.path.isabs(pkg["path"])
    assert pkg["requirement"] == f"-e {checkout}"
    pins = pins_by_name(lock)
    # the editable pin carries the project's name, not the directory's (edit-src)
    assert pins["hpmtest-edit"] == {"name": "hpmtest-edit", "url": str(checkout), "editable": True}
    assert pins["hpmtest-dep"]["version"] == "1.0.0"


def test_target_python_version_and_platform_reach_uv(
    hpm: Run, tmp_path: Path, workdir: Path
) -> None:
    wh = make_wheelhouse(tmp_path / "wh", [
        Pkg("hpmtest-dep", "1.0.0"),
        Pkg("hpmtest-new", "1.0.0", requires_python=">=3.99"),
        Pkg("hpmtest-plat", "1.0.0", deps=["hpmtest-dep ; sys_platform == 'win32'"]),
    ])
    args = ["--no-index", "--find-links", str(wh)]
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-plat", pypi())
    manifest(reg, "hpmtest-new", pypi())
    # the platform decides the closure: the marker pulls hpmtest-dep in on Windows only
    linux = hpm("lock", "-r", reg, "--with", "hpmtest-plat", "-o", "linux.json", *args,
                "--python-version", "3.12", "--python-platform", "x86_64-manylinux_2_28")
    assert linux.code == 0, linux
    win = hpm("lock", "-r", reg, "--with", "hpmtest-plat", "-o", "win.json", *args,
              "--python-version", "3.12", "--python-platform", "windows")
    assert win.code == 0, win
    assert set(pins_by_name(read_lock(workdir / "linux.json"))) == {"hpmtest-plat"}
    assert set(pins_by_name(read_lock(workdir / "win.json"))) == {"hpmtest-plat", "hpmtest-dep"}
    assert read_lock(workdir / "linux.json")["targets"] == [{
        "python_version": "3.12", "python_platform": "x86_64-manylinux_2_28"}]
    assert read_lock(workdir / "win.json")["targets"][0]["python_platform"] == "windows"
    # the version decides too: a wheel for Python >= 3.99 only locks for 3.99
    old = hpm("lock", "-r", reg, "--with", "hpmtest-new", "-o", "old.json", *args, "--python-version", "3.12")
    fails(old, 74, "uv pip compile failed")
    new = hpm("lock", "-r", reg, "--with", "hpmtest-new", "-o", "new.json", *args,
              "--python-version", "3.99")
    assert new.code == 0, new
    assert read_lock(workdir / "new.json")["targets"][0]["python_version"] == "3.99"


def test_bad_target_is_a_usage_error(hpm: Run, registry: Path, workdir: Path) -> None:
    fails(hpm("lock", "-r", registry, "--python-version", "twelve"), 2, "--python-version")
    fails(hpm("lock", "-r", registry, "--python-platform", "linux; rm -rf /"), 2, "--python-platform")


def test_pip_and_conda_managed_packages(
    hpm: Run, tmp_path: Path, wh_args: list[str], workdir: Path
) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-milvus", pypi(), version="0.1.0", install_args={"manager": "pip"})
    manifest(reg, "hpmtest-qdrant", pypi(), version="0.1.0")
    # a conda package that no wheelhouse has: if uv were asked for it, the lock would fail
    manifest(reg, "cudatoolkit", pypi("==11.8"), version="11.8",
             install_args={"manager": "conda", "channels": ["nvidia"]})
    result = hpm("lock", "-r", reg, "--with", "hpmtest-milvus,hpmtest-qdrant,cudatoolkit", *wh_args)
    assert result.code == 0, result
    lock = read_lock(workdir / "hpm.lock.json")
    pkgs = packages_by_name(lock)
    assert pkgs["hpmtest-milvus"]["manager"] == "pip"
    assert pkgs["hpmtest-qdrant"]["manager"] == "uv"
    conda = pkgs["cudatoolkit"]
    assert conda["manager"] == "conda" and conda["requirement"] == "cudatoolkit==11.8"
    pins = pins_by_name(lock)
    assert "cudatoolkit" not in pins
    # one closure for uv and pip packages: core satisfies qdrant (<2) and milvus together
    assert set(pins) == {"hpmtest-milvus", "hpmtest-qdrant", "hpmtest-core", "hpmtest-dep"}
    assert pins["hpmtest-core"]["version"] == "1.1.0"
    assert all(p["files"] for p in pins.values())


def test_conda_only_lock_needs_no_uv(hpm: Run, tmp_path: Path, workdir: Path) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "cudatoolkit", pypi("==11.8"), version="11.8", install_args={"manager": "conda"})
    result = hpm("lock", "-r", reg, "--with", "cudatoolkit", env={"HPM_UV": "/nonexistent/uv"})
    assert result.code == 0, result
    assert read_lock(workdir / "hpm.lock.json")["pins"] == []


# --------------------------------------------------------------------------- determinism


def test_two_runs_are_byte_identical(
    hpm: Run, registry: Path, wh_args: list[str], workdir: Path, tmp_path: Path
) -> None:
    outs = []
    for i in range(2):
        assert hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "-o", f"l{i}.json").code == 0
        b64 = hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "--format", "b64")
        assert b64.code == 0, b64
        outs.append(((workdir / f"l{i}.json").read_bytes(), b64.out))
    assert outs[0] == outs[1]
    # a copy of the registry elsewhere: the same plan, the same lock
    copy = tmp_path / "elsewhere" / "deep" / "registry-copy"
    shutil.copytree(registry, copy)
    assert hpm("lock", "-r", copy, "--with", "hpmtest-app", *wh_args, "-o", "copy.json").code == 0
    copied = read_lock(workdir / "copy.json")
    assert copied["plan_digest"] == read_lock(workdir / "l0.json")["plan_digest"]
    assert (workdir / "copy.json").read_bytes() == outs[0][0]
    # and the payload is the lock, canonically encoded
    assert payload.decode(outs[0][1]) == json.loads(outs[0][0])


# --------------------------------------------------------------------------- 2. formats


def test_formats_b64_env_docker(hpm: Run, registry: Path, wh_args: list[str], workdir: Path) -> None:
    lock = lock_json(hpm, registry, wh_args)
    base = ["lock", "-r", registry, "--with", "hpmtest-app", *wh_args]
    b64 = hpm(*base, "--format", "b64")
    env = hpm(*base, "--format", "env")
    docker = hpm(*base, "--format", "docker")
    for result in (b64, env, docker):
        assert result.code == 0, result
        assert result.out.count("\n") == 1
    text = b64.out.strip()
    assert text.startswith("hpm1.")
    assert env.out == f"HPM_LOCK_B64={text}\n"
    assert docker.out == f"-e HPM_LOCK_B64={text}\n"
    assert payload.decode(text) == lock
    # -o writes the payload to a file, which HPM_LOCK_FILE reads
    assert hpm(*base, "--format", "b64", "-o", "lock.b64").code == 0
    assert (workdir / "lock.b64").read_text() == b64.out
    decoded = hpm("decode", "--json", env={"HPM_LOCK_FILE": str(workdir / "lock.b64")})
    assert decoded.code == 0 and json.loads(decoded.out) == lock


# --------------------------------------------------------------------------- 3. signing


def test_signing_with_key_file_and_env(
    hpm: Run, registry: Path, wh_args: list[str], workdir: Path, tmp_path: Path
) -> None:
    keyfile = tmp_path / "lock.key"
    keyfile.write_text(KEY + "\n")
    base = ["lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "--format", "b64"]
    by_file = hpm(*base, "--sign-key-file", keyfile)
    by_env = hpm(*base, env={"HPM_LOCK_KEY": KEY})
    by_env_file = hpm(*base, env={"HPM_LOCK_KEY_FILE": str(keyfile)})
    unsigned = hpm(*base)
    assert by_file.code == by_env.code == by_env_file.code == unsigned.code == 0
    assert by_file.out == by_env.out == by_env_file.out != unsigned.out
    signed = by_file.out.strip()
    # the right key verifies
    ok = hpm("decode", env={"HPM_LOCK_B64": signed, "HPM_LOCK_KEY": KEY})
    assert ok.code == 0 and "signature verified" in ok.out, ok
    ok = hpm("decode", env={"HPM_LOCK_B64": signed, "HPM_LOCK_KEY_FILE": str(keyfile)})
    assert ok.code == 0, ok
    # no key: decodes, says the signature was not checked
    nokey = hpm("decode", env={"HPM_LOCK_B64": signed})
    assert nokey.code == 0 and "signature not checked" in nokey.out, nokey
    # wrong key, missing signature: 77
    fails(hpm("decode", env={"HPM_LOCK_B64": signed, "HPM_LOCK_KEY": "another key"}), 77,
          "signature does not match")
    fails(hpm("decode", env={"HPM_LOCK_B64": unsigned.out.strip(), "HPM_LOCK_KEY": KEY}), 77, "not signed")
    # a plain JSON lock file cannot satisfy a key
    lock_json(hpm, registry, wh_args)
    fails(hpm("decode", "--from", "hpm.lock.json", env={"HPM_LOCK_KEY": KEY}), 77, "plain JSON")


def test_sign_key_file_with_json_format_is_a_usage_error(
    hpm: Run, registry: Path, tmp_path: Path, workdir: Path
) -> None:
    keyfile = tmp_path / "k"
    keyfile.write_text(KEY)
    fails(hpm("lock", "-r", registry, "--sign-key-file", keyfile), 2, "--sign-key-file")
    assert not (workdir / "hpm.lock.json").exists()


def test_sign_key_file_missing_or_empty(
    hpm: Run, registry: Path, wh_args: list[str], tmp_path: Path, workdir: Path
) -> None:
    base = ["lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "--format", "b64"]
    fails(hpm(*base, "--sign-key-file", tmp_path / "nope.key"), 66, "no such file")
    (tmp_path / "empty.key").write_text("\n")
    empty = hpm(*base, "--sign-key-file", tmp_path / "empty.key")
    # the message names the option that was given, not a variable that was never set
    fails(empty, 2, f"--sign-key-file {tmp_path / 'empty.key'}: the key is empty")
    assert "HPM_LOCK_KEY" not in empty.err, empty
    fails(hpm(*base, "--sign-key-file", ""), 2, "--sign-key-file is empty")


# --------------------------------------------------------------------------- 4. size guard


def test_size_guard_with_small_caps(
    hpm: Run, registry: Path, wh_args: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "--format", "b64"]
    size = len(hpm(*base).out.strip())
    monkeypatch.setattr(payload, "WARN_BYTES", size - 10)
    warned = hpm(*base)
    assert warned.code == 0, warned
    assert "hpm: warning: lock payload is" in warned.err and "HPM_LOCK_FILE" in warned.err
    monkeypatch.setattr(payload, "MAX_BYTES", size - 5)
    refused = hpm(*base)
    fails(refused, 65, "KiB")
    assert "HPM_LOCK_FILE" in refused.err and refused.out == ""
    # the JSON lock has no such limit
    assert hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args).code == 0


def big_registry(reg: Path, count: int, seed: int) -> Path:
    """``count`` conda packages (not compiled by uv) with incompressible entrypoints."""
    rng = random.Random(seed)
    reg.mkdir(parents=True)
    for i in range(count):
        eps = {f"ep{j}": f"python -m pkg{i}.m{j} --token {rng.getrandbits(256):064x}" for j in range(8)}
        manifest(reg, f"big-{i:04d}", pypi(f"=={i}.0"), version=f"{i}.0",
                 install_args={"manager": "conda"}, groups=["all"], entrypoints=eps)
    return reg


def test_size_guard_with_a_big_registry(hpm: Run, tmp_path: Path, workdir: Path) -> None:
    # about 0.45 KiB of base64 per package after compression
    warn = hpm("lock", "-r", big_registry(tmp_path / "r100", 100, 1), "--group", "all", "--format", "b64")
    assert warn.code == 0, warn
    assert payload.WARN_BYTES < len(warn.out.strip()) <= payload.MAX_BYTES
    assert warn.first.startswith("hpm: warning: lock payload is") and "HPM_LOCK_FILE" in warn.first
    big = hpm("lock", "-r", big_registry(tmp_path / "r300", 300, 2), "--group", "all", "--format", "env")
    fails(big, 65, "above the 120 KiB")
    assert "HPM_LOCK_FILE" in big.err and big.out == ""
    # as a file it is fine, and HPM_LOCK_FILE carries it
    ok = hpm("lock", "-r", tmp_path / "r300", "--group", "all", "-o", "big.json")
    assert ok.code == 0, ok
    decoded = hpm("decode", "--json", env={"HPM_LOCK_FILE": "big.json"})
    assert decoded.code == 0 and len(json.loads(decoded.out)["packages"]) == 300


# --------------------------------------------------------------------------- 5. --check


def test_check(hpm: Run, registry: Path, wh_args: list[str], workdir: Path) -> None:
    manifest(registry, "hpmtest-qdrant", pypi(), version="0.1.0")
    base = ["lock", "-r", registry, "--with", "hpmtest-app", *wh_args]
    fails(hpm(*base, "--check"), 66, "no lock at hpm.lock.json")
    assert hpm(*base).code == 0
    ok = hpm(*base, "--check")
    assert ok.code == 0 and "up to date" in ok.out, ok
    # --check needs no installer and no git
    assert hpm(*base, "--check", env={"HPM_UV": "/nonexistent/uv"}).code == 0
    # the selection changed
    stale = hpm(*base, "--with", "hpmtest-qdrant", "--check")
    assert stale.code == 1 and "out of date" in stale.err and "selection" in stale.err, stale
    # another target than asked
    assert hpm(*base, "--check", "--python-version", "3.99").code == 1
    # a payload file checks too, and a copy of the registry elsewhere is still up to date
    assert hpm(*base, "--format", "b64", "-o", "lock.b64").code == 0
    assert hpm(*base, "--check", "-o", "lock.b64").code == 0
    # the registry changed
    app = registry / "hpmtest-app.yaml"
    app.write_text(app.read_text().replace("--port 8001", "--port 9000"))
    stale = hpm(*base, "--check")
    assert stale.code == 1 and "registry" in stale.err, stale
    assert hpm(*base, "--check", "-o", "lock.b64").code == 1
    # a broken lock is invalid data
    Path("broken.json").write_text('{"version": 2}')
    fails(hpm(*base, "--check", "-o", "broken.json"), 65, "not a valid lock")


# --------------------------------------------------------------------------- 6. decode


def test_decode_sources_and_formats(
    hpm: Run, registry: Path, wh_args: list[str], workdir: Path
) -> None:
    lock = lock_json(hpm, registry, wh_args)
    text = hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args, "--format", "b64").out.strip()
    from_b64 = hpm("decode", "--json", env={"HPM_LOCK_B64": text})
    from_file = hpm("decode", "--json", env={"HPM_LOCK_FILE": "hpm.lock.json"})
    from_flag = hpm("decode", "--json", "--from", "hpm.lock.json", env={"HPM_LOCK_B64": "ignored"})
    for result in (from_b64, from_file, from_flag):
        assert result.code == 0, result
        assert json.loads(result.out) == lock
    assert from_file.out == Path("hpm.lock.json").read_text()
    human = hpm("decode", env={"HPM_LOCK_B64": text})
    assert human.code == 0, human
    assert "source:   HPM_LOCK_B64 (unsigned)" in human.out
    assert f"digest:   {payload.digest(lock)}" in human.out
    for name in ("hpmtest-app", "hpmtest-gitann", "hpmtest-gitplugin", "hpmtest-core"):
        assert name in human.out
    assert "hpmtest-app:serve = hpmtest-app --port 8001" in human.out
    assert "pins:     4 (2 with hashes)" in human.out
    fails(hpm("decode", unset=("HPM_LOCK_B64", "HPM_LOCK_FILE")), 66, "no lock to decode")
    fails(hpm("decode", "--from", "missing.json"), 66, "no such file")


def test_decode_masks_credentials(hpm: Run, registry: Path, wh_args: list[str], workdir: Path) -> None:
    lock = lock_json(hpm, registry, wh_args)
    secret_url = "https://alice:s3cr3t-token@git.example.com/org/repo"
    for pkg in lock["packages"]:
        if pkg["name"] == "hpmtest-gitann":
            pkg["requirement"] = f"hpmtest-gitann @ git+{secret_url}@{pkg['commit']}"
    for pin in lock["pins"]:
        if pin["name"] == "hpmtest-gitann":
            pin["url"] = f"git+{secret_url}@abc"
    lock["packages"][0]["entrypoints"] = {"serve": f"app --upstream {secret_url}"}
    text = payload.encode(lock)
    for argv in (("decode",), ("decode", "--json")):
        result = hpm(*argv, env={"HPM_LOCK_B64": text})
        assert result.code == 0, result
        assert "s3cr3t" not in result.out + result.err
        assert "https://***@git.example.com/org/repo" in result.out


# --------------------------------------------------------------------------- 7. bad payloads


@pytest.fixture
def good_payload() -> str:
    lock = {
        "version": 2, "hpm": "0.1.0", "mode": "prod", "targets": [{"python_version": "3.11"}],
        "plan_digest": "sha256:" + "0" * 64, "packages": [], "pins": [],
    }
    return payload.encode(lock)


def _flip(text: str) -> str:
    """The payload with one bit of the compressed lock flipped (re-encoded validly)."""
    raw = bytearray(zlib.decompress(base64.b64decode(text[5:])))
    raw[-5] ^= 0x01
    return "hpm1." + base64.b64encode(zlib.compress(bytes(raw), 9)).decode()


BAD_PAYLOADS: dict[str, tuple[Callable[[str], str], int, str]] = {
    "not base64": (lambda t: "hpm1.this is not base64!", 65, "not valid base64"),
    "url-safe": (lambda t: "hpm1." + base64.urlsafe_b64encode(b"\xfb\xff" * 40).decode(), 65, "URL-safe"),
    "truncated": (lambda t: t[: len(t) // 2 // 4 * 4], 65, "truncated"),
    "bit-flipped": (_flip, 65, "digest mismatch"),
    "unknown version": (lambda t: "hpm7." + t[5:], 65, "envelope version 7"),
    "no prefix": (lambda t: t[5:], 65, "not an hpm lock payload"),
    "empty": (lambda t: "   ", 65, "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_decode_refuses_bad_payloads(hpm: Run, good_payload: str, case: str) -> None:
    make, code, words = BAD_PAYLOADS[case]
    result = hpm("decode", env={"HPM_LOCK_B64": make(good_payload)})
    fails(result, code, words)
    if case == "unknown version":
        assert "v1 (prefix hpm1.)" in result.first


def test_decode_refuses_a_decompression_bomb_quickly(hpm: Run, tmp_path: Path) -> None:
    bomb = zlib.compress(b"\0" * (1 << 30), 9)  # 1 GiB of zeros, about 1 MiB compressed
    path = tmp_path / "bomb.b64"
    path.write_text("hpm1." + base64.b64encode(bomb).decode())
    t0 = time.perf_counter()
    result = hpm("decode", "--from", path)
    assert time.perf_counter() - t0 < 2.0
    fails(result, 65, "inflates beyond")
    assert "decompression bomb" in result.err


@pytest.mark.parametrize("shape, words", [
    ([1, 2, 3], "the lock must be a JSON object, found an array"),
    ({"packages": []}, "expected a lock with a 'version' field"),
    ({"version": 1}, "lock format version 1; this hpm reads lock format version 2"),
    ({"version": 3}, "lock format version 3; this hpm reads lock format version 2"),
    ({"version": 2, "hpm": "0.1.0"}, "missing required field"),
    ({"version": 2, "hpm": "0.1.0", "mode": "prod", "targets": [{"python_version": 3.11}],
      "plan_digest": "x", "packages": [], "pins": []},
     "Expected `str`, got `float` - at `$.targets[0].python_version`"),
    ({"version": 2, "hpm": "0.1.0", "mode": "prod", "targets": [{"python_version": "3.11"}],
      "plan_digest": "x", "packages": [], "pins": [], "extra": 1}, "unknown field `extra`"),
    ({"version": 2, "hpm": "0.1.0", "mode": "prod", "targets": [{"python_version": "3.11"}],
      "plan_digest": "x", "packages": [], "pins": [{"name": "a", "version": "1", "files": [
          {"name": "a-1-py3-none-any.whl"}]}]}, "missing required field `hash`"),
])
def test_decode_refuses_wrong_shapes(hpm: Run, shape: Any, words: str) -> None:
    # payload.encode wants an object; build the envelope around any JSON value instead
    lock_bytes = payload.canonical_bytes(shape)
    header = payload.canonical_bytes({"sha256": "sha256:" + hashlib.sha256(lock_bytes).hexdigest()})
    text = "hpm1." + base64.b64encode(zlib.compress(header + b"\n" + lock_bytes, 9)).decode()
    result = hpm("decode", env={"HPM_LOCK_B64": text})
    fails(result, 65)
    assert words in result.first, result


def test_decode_with_both_variables_is_a_usage_error(hpm: Run, good_payload: str) -> None:
    fails(hpm("decode", env={"HPM_LOCK_B64": good_payload, "HPM_LOCK_FILE": "x.json"}), 2, "both")


@pytest.mark.parametrize("env, code, words", [
    ({"HPM_LOCK_B64": "hpm1.%%%%"}, 65, "not valid base64"),
    ({"HPM_LOCK_B64": "hpm9.AAAA"}, 65, "envelope version 9"),
])
def test_decode_in_a_real_process(env: dict[str, str], code: int, words: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hpm_boot", "decode"], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=60)
    assert proc.returncode == code, proc
    assert proc.stderr.startswith("hpm: error: ") and words in proc.stderr.splitlines()[0], proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- 7. bad lock inputs


def test_missing_git_ref(hpm: Run, tmp_path: Path, git_plugin: GitRepo, wh_args: list[str],
                         workdir: Path) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-gitplugin", {"type": "git", "url": git_plugin.url, "ref": "v9.9.9"})
    result = hpm("lock", "-r", reg, "--with", "hpmtest-gitplugin", *wh_args)
    fails(result, 66, "hpmtest-gitplugin", "'v9.9.9'", "not found")
    assert not (workdir / "hpm.lock.json").exists()
    manifest(reg, "hpmtest-gitplugin", {"type": "git", "url": (tmp_path / "nope").as_uri(), "ref": "v1"})
    fails(hpm("lock", "-r", reg, "--with", "hpmtest-gitplugin", *wh_args), 66, "hpmtest-gitplugin",
          "cannot read git repository")


def test_credentials_in_git_urls_are_masked(hpm: Run, tmp_path: Path, workdir: Path) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "private", {"type": "git", "url": "https://bob:hunter2@git.invalid/org/private.git",
                              "ref": "v1.0.0"})
    result = hpm("lock", "-r", reg, "--with", "private")
    fails(result, 66, "private", "https://***@git.invalid/org/private.git")
    assert "hunter2" not in result.err + result.out


def test_uv_missing(hpm: Run, registry: Path, wh_args: list[str], workdir: Path) -> None:
    result = hpm("lock", "-r", registry, "--with", "hpmtest-app", *wh_args, env={"HPM_UV": "/nonexistent/uv"})
    fails(result, 69, "HPM_UV=/nonexistent/uv")
    assert not (workdir / "hpm.lock.json").exists()


def test_uv_compile_fails_with_its_own_message(
    hpm: Run, tmp_path: Path, wh_args: list[str], workdir: Path
) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-nope", pypi())
    result = hpm("lock", "-r", reg, "--with", "hpmtest-nope", *wh_args)
    fails(result, 74, "uv pip compile failed", "No solution found")
    assert "hpmtest-nope was not found" in result.err  # uv's cause, in the details
    # an unsatisfiable version of a package the wheelhouse has
    manifest(reg, "hpmtest-core", pypi("==9.9"))
    fails(hpm("lock", "-r", reg, "--with", "hpmtest-core", *wh_args), 74, "No solution found")


def test_credentials_in_index_urls_are_masked(hpm: Run, tmp_path: Path, workdir: Path) -> None:
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-nope", pypi())
    manifest(reg, "hpmtest-private", pypi(index="https://carol:idx-secret@pkgs.invalid/simple"))
    for argv in (
        ("--with", "hpmtest-nope", "--index-url", "https://user:secret@host.invalid/simple"),
        ("--with", "hpmtest-nope", "--find-links", "https://user:secret@host.invalid/wheels/"),
        ("--with", "hpmtest-private",),
    ):
        result = hpm("lock", "-r", reg, *argv)
        fails(result, 74, "uv pip compile failed")
        assert "secret" not in result.err + result.out, result


def test_a_pylock_toml_hpm_cannot_read_is_74_in_one_line(
    tmp_path: Path, wh_args: list[str], workdir: Path, uv_bin: Path
) -> None:
    """uv is real, but for the compile that writes pylock.toml, which prints bad TOML."""
    reg = tmp_path / "reg"
    manifest(reg, "hpmtest-core", pypi("==1.0.0"))
    stand_in = write_exe(tmp_path / "uv-bad-pylock", f"""#!/bin/sh
case " $* " in
  *" pip compile "*" --format pylock.toml "*) cat >/dev/null; echo 'packages = [ {{';;
  *) exec {uv_bin} "$@";;
esac
""")
    proc = subprocess.run([sys.executable, "-m", "hpm_boot", "lock", "-r", str(reg), "--with", "hpmtest-core",
                           *wh_args], capture_output=True, text=True, cwd=workdir, timeout=120,
                          env={**os.environ, "HPM_UV": str(stand_in), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 74, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("hpm: error: ")]
    assert errors == lines[-1:], proc.stderr  # one error line, the last: no details after it
    assert errors[0].startswith("hpm: error: uv pip compile wrote a pylock.toml hpm cannot read: "), lines
    assert not (workdir / "hpm.lock.json").exists()

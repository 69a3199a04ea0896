"""``hpm gc`` and the cache: other builds' unpacked files go, the running build's stay,
what a running hpm holds stays, a concurrent start and gc both succeed, a read-only
cache is exit 73. Real pyz builds, real processes, a cache in a temp dir (HOME, TMPDIR,
XDG_CACHE_HOME and HPM_CACHE all point there, so no test touches a real cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import build_zipapp
from tests.test_zipapp import pyz, wheels_dir

__all__ = ["pyz", "wheels_dir"]

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "examples" / "registry"


@pytest.fixture(scope="session")
def other_pyz(tmp_path_factory: pytest.TempPathFactory, wheels_dir: Path) -> Path:
    """Another build (fewer platforms: another lib zip, the same msgspec wheel for here)."""
    out = tmp_path_factory.mktemp("other") / "hpm-other.pyz"
    build_zipapp.build(out, wheels_dir, platforms=["manylinux_x86_64"], offline=True)
    return out


def isolated(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPM_", "XDG_", "PYTHON"))}
    for d in ("home", "tmp"):
        (tmp_path / d).mkdir(exist_ok=True)
    env.update({"HPM_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"),
                "TMPDIR": str(tmp_path / "tmp"), "HPM_EPHEMERAL_DIR": str(tmp_path / "eph")})
    return env


def hpm(pyz_file: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(pyz_file), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def listing(cache: Path) -> dict[str, list[str]]:
    return {sub: sorted(os.listdir(cache / sub)) for sub in ("lib", "wheels") if (cache / sub).is_dir()}


def old_build_wheel(cache: Path) -> Path:
    """What an older build left: an unpacked msgspec of another version (and its lock)."""
    old = cache / "wheels" / "msgspec-0.18.6-0123456789abcdef01234567"
    (old / "msgspec").mkdir(parents=True)
    (old / "msgspec" / "_core.so").write_bytes(b"\0" * 300_000)
    (cache / "wheels" / f"{old.name}.lock").write_text("")
    return old


def test_gc_removes_other_builds_and_keeps_its_own(pyz: Path, other_pyz: Path, tmp_path: Path) -> None:
    env = isolated(tmp_path)
    cache = tmp_path / "cache"
    zips = []
    for p in (pyz, other_pyz):
        done = hpm(p, "validate", "-r", str(REGISTRY), env=env)
        assert done.returncode == 0, done.stderr
        zips.append(next(n for n in listing(cache)["lib"] if n.endswith(".zip") and n not in zips))
    own_lib, other_lib = zips
    old = old_build_wheel(cache)
    before = listing(cache)
    # --dry-run: says what and how much, removes nothing
    dry = hpm(pyz, "gc", "--cache-only", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {cache}/lib/{other_lib}  " in dry.stdout, dry.stdout
    assert f"would remove {old}  293.0 KiB" in dry.stdout, dry.stdout
    assert f"kept     {cache}/lib/{own_lib}" in dry.stdout and "(this hpm)" in dry.stdout
    assert "would remove 2 of 5 cache entries" in dry.stdout, dry.stdout  # shared msgspec, PyYAML kept
    assert listing(cache) == before
    # for real: the other build's lib zip and the old wheel go, with their lock files
    done = hpm(pyz, "gc", "--cache-only", env=env)
    assert done.returncode == 0, done.stderr
    assert "removed 2 of 5 cache entries" in done.stdout, done.stdout
    after = listing(cache)
    assert after["lib"] == sorted([own_lib, f"{own_lib}.lock"])
    assert not old.exists() and f"{old.name}.lock" not in after["wheels"]
    assert len([n for n in after["wheels"] if not n.endswith(".lock")]) == 2  # this build's msgspec, PyYAML
    # the other build still runs: it unpacks itself again
    assert hpm(other_pyz, "validate", "-r", str(REGISTRY), env=env).returncode == 0
    # plain `hpm gc` does both: the ephemeral environments' report and the cache's
    both = hpm(pyz, "gc", "--dry-run", env=env)
    assert "no ephemeral environments in" in both.stdout
    assert "would remove 1 of 4 cache entries" in both.stdout


HOLDER = """\
import sys, time, os
sys.path.insert(0, sys.argv[1])
import _hpm_start
_hpm_start.serve(sys.argv[1])
import hpm_boot._pyz as p
p.setup()
import msgspec
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
"""


def test_what_a_running_hpm_uses_is_kept(pyz: Path, other_pyz: Path, tmp_path: Path) -> None:
    env = isolated(tmp_path)
    ready, go = tmp_path / "ready", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-I", "-c", HOLDER, str(other_pyz), str(ready), str(go)],
                              env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        done = hpm(pyz, "gc", "--cache-only", env=env)
        assert done.returncode == 0, done.stderr
        assert "in use" in done.stdout and "kept: a running hpm holds it" in done.stdout, done.stdout
        assert len([n for n in listing(tmp_path / "cache")["lib"] if n.endswith(".zip")]) == 2
    finally:
        go.touch()
        assert holder.wait(timeout=60) == 0
    done = hpm(pyz, "gc", "--cache-only", env=env)
    assert "removed 1 of 3 cache entries" in done.stdout, done.stdout


LOOP = """\
import json, random, subprocess, sys, time
seconds, pause, cmd = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
random.seed(len(sys.argv) + int(pause * 1000))
results, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    done = subprocess.run(cmd, capture_output=True, text=True)
    results.append([done.returncode, done.stdout, done.stderr[-2000:]])
    time.sleep(random.uniform(0, pause))
print(json.dumps(results))
"""


def test_gc_while_other_hpms_extract_neither_fails(pyz: Path, other_pyz: Path, tmp_path: Path) -> None:
    """Starts of the other build (each unpacking its lib zip again once gc removed it) and
    gc runs, in loops side by side for a few seconds: every process succeeds."""
    import json

    env = isolated(tmp_path)
    start = [sys.executable, str(other_pyz), "validate", "-r", str(REGISTRY)]
    gc = [sys.executable, str(pyz), "gc", "--cache-only"]
    out = subprocess.PIPE
    loops = [subprocess.Popen([sys.executable, "-c", LOOP, "4", wait, *start], env=env, stdout=out,
                              text=True)
             for wait in ("0.15", "0.2")]
    loops += [subprocess.Popen([sys.executable, "-c", LOOP, "4", "0.01", *gc], env=env, stdout=out, text=True)
              for _ in range(2)]
    runs = [(i, r) for i, p in enumerate(loops) for r in json.loads(p.communicate(timeout=120)[0])]
    assert [r for _, r in runs if r[0] != 0] == []
    verdicts = [line.split()[0] for i, r in runs if i >= 2 for line in r[1].splitlines()[:-1]]
    counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    print(f"\n{len(runs)} runs; gc verdicts: {counts}")
    assert counts.get("removed", 0) > 0 and len([1 for i, _ in runs if i < 2]) > 4, counts
    leftovers = [n for names in listing(tmp_path / "cache").values() for n in names
                 if n.startswith(".") and not n.endswith(".lock")]
    assert leftovers == []  # no temporary or trash left behind


def _read_only_run(cmd: list[str], directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``cmd`` with ``directory`` read-only: chmod for a normal user, a read-only bind
    mount in a private mount namespace for root (whom permission bits do not stop)."""
    if os.geteuid() != 0:
        for d in (directory, *[p for p in directory.rglob("*") if p.is_dir()]):
            d.chmod(0o555)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    unshare = shutil.which("unshare")
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    if unshare is None or subprocess.run([unshare, "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("root without a private mount namespace: no way to make a directory read-only")
    return subprocess.run([unshare, "--mount", "sh", "-c", script, "sh", str(directory), *cmd], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_read_only_cache_is_reported_and_73(pyz: Path, other_pyz: Path, tmp_path: Path) -> None:
    env = isolated(tmp_path)
    ro = tmp_path / "ro-cache"
    assert hpm(other_pyz, "validate", "-r", str(REGISTRY), env={**env, "HPM_CACHE": str(ro)}).returncode == 0
    assert hpm(pyz, "validate", "-r", str(REGISTRY), env=env).returncode == 0  # its own, writable
    done = _read_only_run([sys.executable, str(pyz), "gc", "--cache-only"], ro, {**env, "HPM_CACHE": str(ro)})
    assert done.returncode == 73, (done.stdout, done.stderr)
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"hpm: error: cannot prune the hpm cache in {ro}/lib: "), done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot remove {ro}/lib/lib-" in done.stdout
    assert len([n for n in os.listdir(ro / "lib") if n.endswith(".zip")]) == 1  # untouched

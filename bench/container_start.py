"""Container start to app running: hpm's just-in-time install against a baked image.

    python bench/container_start.py [--reps 5] [--packages 20] [--real] [--write]

Builds (once) the hpm image of docker/Dockerfile from a fresh dist/hpm.pyz and the
host's uv, a wheelhouse, a registry naming its packages and a lock of it; then a second
image FROM the first with the same lock installed at build time (``hpm install`` in a RUN
step with ``UV_COMPILE_BYTECODE=1``, HPM_LOCK_FILE baked in, as docs/containers.md bakes).
The wheelhouse is N tiny one-module packages, or with ``--real`` the 20 PyPI packages of
bench/install_cold.py (numpy, pydantic, tzdata...; their wheels are downloaded once into
build/bench-wheels/, which needs the network). Measured, from ``podman run`` (or
``start``) until the app's first output line (the app imports every package):

- cold:  a fresh container, HPM_LOCK_B64 injected, packages from the wheelhouse mounted
         read-only (--network=none), empty uv cache: hpm decodes, installs, execs.
- warm:  the same container started again (``podman start -a``): already installed.
- shared: a fresh container whose uv cache (``/var/cache/uv``) is a volume another
         container already filled: the Kubernetes case of many replicas and one cache
         PVC. hpm installs, uv takes every wheel from the cache. The target's row.
- shared, .pyc at install: the same with ``UV_COMPILE_BYTECODE=1``, what the image set
         before: uv compiles the whole closure before the app starts.
- shared, venv volume: the same with ``HPM_VENV`` on a volume of its own, the layout of
         examples/k8s (an ``emptyDir``): ``uv venv`` first, the packages outside the
         container's overlay filesystem.
- baked: a fresh container of the baked image: already installed at build time.
- bare:  the baked image with ``--entrypoint python3``: no hpm at all (the floor).

Prints medians and ratios; ``--write`` records them under
``## Container start (bench/container_start.py)`` in docs/benchmarks.md (with ``--real``,
under its own heading).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import BASE, ENGINE, build_hpm_image, write_pypi_registry, write_section  # noqa: E402
from bench.install_cold import REAL, real_wheelhouse  # noqa: E402
from tests.support.factory import Pkg, make_wheelhouse  # noqa: E402

SECTION = "## Container start (bench/container_start.py)"
SECTION_REAL = "## Container start, 20 real packages (bench/container_start.py --real)"
#: the module each ``REAL`` distribution is imported as, where the names differ
REAL_MODULES = {"python-dateutil": "dateutil", "pyyaml": "yaml"}
ROWS = {
    "cold": "fresh container, HPM_LOCK_B64, empty uv cache: hpm installs {n} packages, execs",
    "warm": "same container restarted (`start -a`): already installed, no installer",
    "shared": "fresh container, HPM_LOCK_B64, uv cache volume already warm (one PVC, many replicas): "
              "hpm installs {n} packages from the cache",
    "shared, .pyc at install": "the same, `UV_COMPILE_BYTECODE=1`: uv compiles the whole closure first",
    "shared, venv volume": "the same, `HPM_VENV` on a volume of its own (the examples/k8s layout)",
    "baked": "fresh container of the image with the lock installed (and compiled) at build time",
    "bare": "baked image, `--entrypoint python3`: no hpm (the floor)",
}


def sh(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def time_to_first_line(argv: list[str], env: dict[str, str], marker: str = "APP-UP") -> float:
    """Seconds from starting ``argv`` until it prints ``marker`` (then waits for its end)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    assert proc.stdout is not None
    seconds = None
    for line in proc.stdout:
        if marker in line:
            seconds = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    code = proc.wait()
    if seconds is None or code != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... exit {code}, no {marker}:\n{err}")
    return seconds


def setup(work: Path, n: int, tag: str, real: bool) -> dict[str, object]:
    image = f"localhost/hpm-bench:{tag}"
    version = build_hpm_image(work, image)
    if real:
        tag_dir = f"cpython-{version.replace('.', '')}-{platform.machine()}"
        wh = real_wheelhouse(ROOT / "build" / "bench-wheels" / tag_dir, f"python{version}", os.environ)
        reg = write_pypi_registry(work / "registry", REAL)
        names = list(REAL)
        modules = [REAL_MODULES.get(name, name.replace("-", "_")) for name in names]
    else:
        names = modules = [f"benchpkg{i:02d}" for i in range(n)]
        wh = make_wheelhouse(work / "wheels", [Pkg(name, "1.0.0") for name in names])
        reg = write_pypi_registry(work / "registry", names)
    lock_args = ["--registry", str(reg), "--with", ",".join(names), "--python-version", version,
                 "--no-index", "--find-links", str(wh)]
    hpm = [sys.executable, "-m", "hpm_boot"]
    b64 = subprocess.run([*hpm, "lock", "--format", "b64", *lock_args], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    # the baked image: the same lock, installed by hpm at build time
    bake = work / "bake"
    bake.mkdir()
    subprocess.run([*hpm, "lock", *lock_args, "-o", str(bake / "hpm.lock.json")], cwd=ROOT, check=True,
                   capture_output=True)
    shutil.copytree(wh, bake / "wheels")
    (bake / "Dockerfile").write_text(
        f"FROM {image}\nCOPY hpm.lock.json /opt/hpm/hpm.lock.json\nCOPY wheels /tmp/wheels\n"
        "ENV HPM_LOCK_FILE=/opt/hpm/hpm.lock.json\n"
        "RUN UV_COMPILE_BYTECODE=1 python3 /opt/hpm/hpm.pyz install --no-index --find-links /tmp/wheels"
        " && rm -rf /tmp/wheels\n")
    baked = f"localhost/hpm-bench-baked:{tag}"
    sh(ENGINE, "build", "-q", "-t", baked, str(bake))
    app = "import " + ", ".join(modules) + "; print('APP-UP', flush=True)"
    return {"image": image, "baked": baked, "b64": b64, "wheels": wh, "app": app, "python": version,
            "n": len(names)}


def measure(s: dict[str, object], reps: int, tag: str) -> dict[str, list[float]]:
    env = {"HPM_LOCK_B64": str(s["b64"]), "UV_OFFLINE": "1", "UV_FIND_LINKS": "/wheels", "HPM_LOG": "quiet"}
    inject = ["--network=none", "-v", f"{s['wheels']}:/wheels:ro",
              *[a for k in env for a in ("-e", k)]]
    app = ["python3", "-c", str(s["app"])]
    image, baked = str(s["image"]), str(s["baked"])
    cache = f"hpm-bench-uvcache-{tag}"  # filled once by a first replica, not timed
    shared = [*inject, "-v", f"{cache}:/var/cache/uv"]
    fresh = {  # a new container each time (``--rm``; ``-v /venv`` is an anonymous volume, removed too)
        "shared": [*shared, image],
        "shared, .pyc at install": [*shared, "-e", "UV_COMPILE_BYTECODE=1", image],
        "shared, venv volume": [*shared, "-e", "HPM_VENV=/venv", "-v", "/venv", image],
        "baked": ["--network=none", "-e", "HPM_LOG", baked],
    }
    times: dict[str, list[float]] = {key: [] for key in ROWS}
    names = []
    time_to_first_line([ENGINE, "run", "--rm", *fresh["shared"], *app], env)
    for i in range(reps):
        name = f"hpm-bench-{tag}-{i}"
        names.append(name)
        times["cold"].append(time_to_first_line([ENGINE, "run", "--name", name, *inject, image, *app], env))
        times["warm"].append(time_to_first_line([ENGINE, "start", "-a", name], env))
        for key, args in fresh.items():
            times[key].append(time_to_first_line([ENGINE, "run", "--rm", *args, *app], env))
        times["bare"].append(time_to_first_line(
            [ENGINE, "run", "--rm", "--network=none", "--entrypoint", "python3", baked, *app[1:]], env))
    for name in names:
        subprocess.run([ENGINE, "rm", "-f", name], capture_output=True)
    subprocess.run([ENGINE, "volume", "rm", "-f", cache], capture_output=True)
    return times


def report(times: dict[str, list[float]], s: dict[str, object], reps: int, real: bool) -> str:
    n = s["n"]
    med = {k: statistics.median(v) for k, v in times.items()}
    engine_version = sh(ENGINE, "--version").strip()
    packages = ("the 20 real PyPI packages of bench/install_cold.py (numpy, pydantic, tzdata...)" if real
                else f"{n} tiny one-module packages")
    ratio = med["shared"] / med["baked"]
    compile_cost = (med["shared, .pyc at install"] - med["shared"]) * 1000
    lines = [
        SECTION_REAL if real else SECTION,
        "",
        f"Container start to app running: the app imports all of {packages} and prints a line;",
        f"time from `{ENGINE} run`/`start` to that line, median of {reps} runs. {engine_version},",
        f"{platform.machine()}, {os.cpu_count()} CPUs, image {BASE} (Python {s['python']}), packages from a",
        "wheelhouse mounted read-only, `--network=none`. Every row runs in the same rounds.",
        "",
        "| start | what happens | median | min | vs baked |",
        "|---|---|---|---|---|",
    ]
    for key, what in ROWS.items():
        lines.append(f"| {key} | {what.format(n=n)} | {med[key]:.3f} s | {min(times[key]):.3f} s | "
                     f"{med[key] / med['baked']:.2f}x |")
    lines += [
        "",
        f"A fresh container with a warm shared uv cache against the baked image: {ratio:.2f}x "
        f"(shared {med['shared']:.3f} s against baked {med['baked']:.3f} s)"
        + (f"; the target, within 1.5x for 20 packages, is {'met' if ratio <= 1.5 else 'MISSED'}." if not real
           else ". The 1.5x target is set on the tiny packages (the section above); this is the same"
           " measurement on a real closure, where uv writing every file of numpy and tzdata dominates."),
        "What a warm shared cache does not save is uv itself: `uv pip install` of the closure from its "
        "cache (the cache volume is another filesystem, so it copies every file). Compiling the whole "
        f"closure first (`.pyc at install`) costs {compile_cost:+.0f} ms "
        "against letting the app compile what it imports: why the images no longer set "
        "`UV_COMPILE_BYTECODE` (docs/containers.md).",
        "",
        f"Cold/baked = {med['cold'] / med['baked']:.2f}x: the just-in-time install costs "
        f"{(med['cold'] - med['baked']) * 1000:.0f} ms per fresh container. Warm/baked = "
        f"{med['warm'] / med['baked']:.2f}x; hpm's own share of a warm start (baked - bare) is "
        f"{(med['baked'] - med['bare']) * 1000:.0f} ms. (`start` of an existing container skips creating",
        "one, which is why a warm restart can beat a fresh container of the baked image.)",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--packages", type=int, default=20, help="how many tiny packages (default 20)")
    parser.add_argument("--real", action="store_true",
                        help="the 20 real PyPI packages of bench/install_cold.py (downloads them once)")
    parser.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="hpm-bench-") as tmp:
        work = Path(tmp)
        try:
            s = setup(work, args.packages, tag, args.real)
            times = measure(s, args.reps, tag)
        finally:
            for image in (f"localhost/hpm-bench-baked:{tag}", f"localhost/hpm-bench:{tag}"):
                subprocess.run([ENGINE, "rmi", "-f", image], capture_output=True)
    text = report(times, s, args.reps, args.real)
    print(text)
    if args.write:
        write_section(text, SECTION_REAL if args.real else SECTION)
        print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

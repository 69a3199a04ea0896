"""A registry of real PyPI plugins, locked and booted in a real container. NEEDS THE NETWORK.

    python bench/datasette_container.py [--reps 3] [--write]

Not part of the test suite: it reaches PyPI, both when locking and inside the
container. The registry is examples/datasette/registry (Datasette 0.65.1, the
``map-viz`` virtual with two providers, the ``json`` group, and the registry-wide
constraint ``setuptools<81`` it needs). Steps, each timed:

1. ``hpm lock --group json --format b64`` for the image's Python, from PyPI;
2. a fresh container of docker/Dockerfile's image (hpm.pyz as ENTRYPOINT) with
   ``HPM_LOCK_B64``: hpm installs the 32 pins from PyPI and execs the app, which
   answers ``datasette --get /-/plugins.json`` (the app's own request path, in-process);
3. the same container started again: installed already, no installer;
4. ``hpm smoke`` in a fresh container: install, import every plugin's modules, run the
   ``smoke`` entrypoint;
5. the same registry without the constraint: the plan locks and installs, and the app
   dies at import (``No module named 'pkg_resources'``), which is why it is there.

Behind a TLS-intercepting proxy, the host's ``SSL_CERT_FILE`` (when set) is mounted
read-only into the containers and named there by ``SSL_CERT_FILE``, which uv honours.

Prints the timings; ``--write`` records them under
``## Real PyPI plugins in a container (bench/datasette_container.py)`` in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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

from bench._common import BASE, ENGINE, build_hpm_image, write_section  # noqa: E402

REGISTRY = ROOT / "examples" / "datasette" / "registry"
SECTION = "## Real PyPI plugins in a container (bench/datasette_container.py)"
APP = ["datasette", "--get", "/-/plugins.json"]
HPM = [sys.executable, "-m", "hpm_boot"]


def sh(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:8])} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(*args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = sh(*args, check=check)
    return time.perf_counter() - started, proc


def lock(registry: Path, version: str) -> tuple[float, str, int]:
    """(seconds, the b64 payload, pins) of ``hpm lock`` against PyPI."""
    seconds, proc = timed(*HPM, "lock", "-r", str(registry), "--group", "json", "--python-version", version,
                          "--format", "b64")
    payload = proc.stdout.strip()
    pins = int(re.search(r"(\d+) pins for Python", proc.stderr).group(1))  # type: ignore[union-attr]
    return seconds, payload, pins


def tls() -> list[str]:
    """Engine arguments that hand the host's CA bundle (SSL_CERT_FILE) to uv in the container."""
    bundle = os.environ.get("SSL_CERT_FILE")
    if not bundle or not os.path.isfile(bundle):
        return []
    inside = "/etc/ssl/hpm-bench-ca.pem"
    return ["-v", f"{os.path.realpath(bundle)}:{inside}:ro", "-e", f"SSL_CERT_FILE={inside}"]


def boot(image: str, payload: str, name: str) -> tuple[float, float, list[str]]:
    """(cold, warm) seconds of a container running the app, and the plugins it reports."""
    env = {**os.environ, "HPM_LOCK_B64": payload}
    started = time.perf_counter()
    cold = subprocess.run([ENGINE, "run", "--name", name, "-e", "HPM_LOCK_B64", *tls(), image, *APP], env=env,
                          capture_output=True, text=True, timeout=900)
    cold_s = time.perf_counter() - started
    if cold.returncode != 0:
        raise SystemExit(f"the app did not run (exit {cold.returncode}):\n{cold.stderr[-3000:]}")
    plugins = [p["name"] for p in json.loads(cold.stdout.strip().splitlines()[-1])]
    started = time.perf_counter()
    warm = subprocess.run([ENGINE, "start", "-a", name], capture_output=True, text=True, timeout=300)
    warm_s = time.perf_counter() - started
    if warm.returncode != 0:
        raise SystemExit(f"the restart failed (exit {warm.returncode}):\n{warm.stderr[-3000:]}")
    if "packages already installed" not in warm.stderr:
        raise SystemExit(f"the restart installed again:\n{warm.stderr[-3000:]}")
    return cold_s, warm_s, plugins


def smoke(image: str, payload: str) -> tuple[float, str]:
    env = {**os.environ, "HPM_LOCK_B64": payload}
    started = time.perf_counter()
    argv = [ENGINE, "run", "--rm", "-e", "HPM_LOCK_B64", *tls(), "--entrypoint", "python3", image,
            "/opt/hpm/hpm.pyz", "smoke"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"hpm smoke failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return seconds, next(line for line in proc.stdout.splitlines() if line.startswith("smoke:"))


def without_constraint(work: Path, image: str, version: str) -> str:
    """The registry minus its constraint: what the app says then (its last line of stderr)."""
    bare = work / "no-constraint"
    shutil.copytree(REGISTRY, bare)
    (bare / "hpm-registry.yaml").write_text("defaults:\n  with: [datasette, map-viz]\n"
                                            "  providers: {map-viz: map-cluster}\n")
    _, payload, _ = lock(bare, version)
    proc = subprocess.run([ENGINE, "run", "--rm", "-e", "HPM_LOCK_B64", *tls(), image, *APP],
                          env={**os.environ, "HPM_LOCK_B64": payload}, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode == 0:
        return "the app ran (setuptools on PyPI may have changed)"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    results: dict[str, list[float]] = {"lock": [], "cold": [], "warm": [], "smoke": []}
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hpm-datasette-") as tmp:
        work = Path(tmp)
        image = f"localhost/hpm-datasette:{tag}"
        version = build_hpm_image(work, image)
        try:
            for i in range(args.reps):
                seconds, payload, pins = lock(REGISTRY, version)
                results["lock"].append(seconds)
                names.append(f"hpm-datasette-{tag}-{i}")
                cold, warm, plugins = boot(image, payload, names[-1])
                results["cold"].append(cold)
                results["warm"].append(warm)
                seconds, summary = smoke(image, payload)
                results["smoke"].append(seconds)
            failure = without_constraint(work, image, version)
        finally:
            for name in names:
                subprocess.run([ENGINE, "rm", "-f", name], capture_output=True)
            subprocess.run([ENGINE, "rmi", "-f", image], capture_output=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    engine = sh(ENGINE, "--version").stdout.strip()
    lines = [
        SECTION,
        "",
        "examples/datasette/registry (Datasette 0.65.1; `map-viz` -> datasette-cluster-map; group `json`:",
        f"datasette-pretty-json, datasette-json-html; constraint `setuptools<81`): {pins} pins, payload "
        f"{len(payload):,} bytes. From PyPI (the network), median of {args.reps} runs; {engine},",
        f"{platform.machine()}, {os.cpu_count()} CPUs, image {BASE} (Python {version}), uv cache empty",
        "in each fresh container.",
        "",
        "| step | what happens | median | min |",
        "|---|---|---|---|",
    ]
    what = {
        "lock": "`hpm lock --group json --format b64` on the host (uv pip compile against PyPI)",
        "cold": f"fresh container, HPM_LOCK_B64: hpm installs {pins} pins from PyPI, execs "
                "`datasette --get /-/plugins.json`",
        "warm": "the same container restarted: already installed, no installer, the app again",
        "smoke": "`hpm smoke` in a fresh container: install, import each plugin's modules, "
                 "`smoke` entrypoint",
    }
    for key in ("lock", "cold", "warm", "smoke"):
        lines.append(f"| {key} | {what[key]} | {med[key]:.2f} s | {min(results[key]):.2f} s |")
    lines += [
        "",
        f"The app reported the plugins {', '.join(plugins)}; smoke: `{summary}`.",
        f"Without the constraint the app dies at import: `{failure}`.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text, SECTION)
        print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lock payload size and decode speed (``hpm_boot.payload``).

Builds synthetic but realistic locks of 10, 50 and 200 packages (each with a version,
a requirement, one file with a random ``sha256:`` hash and a source), prints the payload
size per encoding and the median in-process decode+verify time of the 200-package
payload, with and without a key. Then ``hpm lock`` for real on a wheelhouse that looks
like PyPI (150 distributions of 60 wheels and an sdist each, ``make_pypi_like``), for one
and for two platforms, beside what the same closure weighed with every file's hash
(lock format 1, ``uv pip compile --generate-hashes``). Writes the figures into
``docs/benchmarks.md`` under ``## Lock payload (bench/payload_size.py)``.

``--pypi`` (needs the network; not part of the suite) locks a realistic plugin stack from
the real PyPI instead and prints pins, hashes and payload bytes, before and after, for
one and two platforms; with ``--write`` it records them too.

Run: ``python bench/payload_size.py [--no-write]``, ``python bench/payload_size.py --pypi``.
"""

from __future__ import annotations

import base64
import lzma
import platform
import random
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import DOC, write_section  # noqa: E402
from hpm_boot import payload  # noqa: E402
from hpm_boot.compose import lock as lockmod  # noqa: E402
from tests.support.requirements import compile_pins  # noqa: E402

SIZES = (10, 50, 200)
RUNS = 300
KEY = b"bench-signing-key-0123456789abcdef"
HEADING = "## Lock payload (bench/payload_size.py)"


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _package(rng: random.Random, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One locked package and its pin, in the lock schema (docs/lock-format.md)."""
    name = f"pkg-{i:04d}"
    version = f"{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"
    package: dict[str, Any] = {"name": name, "version": version, "manager": "uv", "source_mode": "prod"}
    kind = rng.random()
    if kind < 0.7:
        package.update(source="pypi", requirement=f"{name}=={version}")
        tags = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
        wheel = f"{name.replace('-', '_')}-{version}-{tags}.whl"
        pin: dict[str, Any] = {"name": name, "version": version,
                               "files": [{"name": wheel, "hash": f"sha256:{_hex(rng, 64)}"}]}
    elif kind < 0.9:
        sha = _hex(rng, 40)
        url = f"git+https://github.com/example-org/{name}@{sha}"
        package.update(source="git", requirement=f"{name} @ {url}", commit=sha, ref=f"v{version}")
        pin = {"name": name, "url": url}
    else:
        wheel = name.replace("-", "_")
        url = f"https://files.example.org/{name}/{wheel}-{version}-py3-none-any.whl#sha256={_hex(rng, 64)}"
        package.update(source="url", requirement=f"{name} @ {url}")
        pin = {"name": name, "url": url, "hashes": [f"sha256:{_hex(rng, 64)}"]}
    return package, pin


def make_lock(n: int, seed: int = 42) -> dict[str, Any]:
    """A lock of ``n`` packages in the schema ``hpm lock`` writes (checked by lock.from_dict).

    Each package is also a pin (one sha256 each for PyPI and URL wheels, a commit SHA for
    git); the first has an entrypoint.
    """
    rng = random.Random(seed + n)
    pairs = [_package(rng, i) for i in range(n)]
    packages = [p for p, _ in pairs]
    packages[0]["entrypoints"] = {"serve": "python -m pkg_0000.serve --port 8001"}
    lock = {
        "version": lockmod.LOCK_VERSION,
        "hpm": "0.1.0",
        "mode": "prod",
        "targets": [{"python_version": "3.11", "python_platform": "x86_64-manylinux_2_28"}],
        "plan_digest": f"sha256:{_hex(rng, 64)}",
        "packages": packages,
        "pins": sorted((pin for _, pin in pairs), key=lambda p: p["name"]),
    }
    lockmod.from_dict(lock, "bench lock")
    return lock


LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9}]


def _lzma_size(body: bytes) -> int:
    raw = lzma.compress(body, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
    return len(base64.b64encode(raw))


def _time_decode(text: str, key: bytes | None, check_shape: bool = False) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        data = payload.decode(text, key)
        if check_shape:
            lockmod.from_dict(data, "bench")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def _time_lzma_decode(body: bytes) -> float:
    filters = LZMA_FILTERS
    raw = lzma.compress(body, format=lzma.FORMAT_RAW, filters=filters)
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters).decompress(raw)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def _time_zlib_decode(body: bytes) -> float:
    raw = zlib.compress(body, 9)
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        zlib.decompressobj().decompress(raw, payload.MAX_BODY_BYTES + 1)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def measure() -> tuple[list[tuple[int, int, int, int, int]], dict[str, float]]:
    rows = []
    for n in SIZES:
        lock = make_lock(n)
        body = b'{"hmac":"","sha256":""}\n' + payload.canonical_bytes(lock)
        text = payload.encode(lock)
        signed = payload.encode(lock, KEY)
        rows.append((n, len(body), len(text), len(signed), _lzma_size(body)))
    lock = make_lock(SIZES[-1])
    body = payload.canonical_bytes(lock)
    times = {
        "decode+verify, no key": _time_decode(payload.encode(lock, KEY), None),
        "decode+verify, with key": _time_decode(payload.encode(lock, KEY), KEY),
        "decode+verify+lock.from_dict (CLI path), with key": _time_decode(
            payload.encode(lock, KEY), KEY, check_shape=True),
        "zlib inflate only": _time_zlib_decode(body),
        "lzma inflate only (comparison)": _time_lzma_decode(body),
    }
    return rows, times


def render(rows: list[tuple[int, int, int, int, int]], times: dict[str, float]) -> str:
    lines = [
        "| packages | canonical JSON | payload (zlib-9, unsigned) | payload (signed) "
        "| lzma-9 raw, for comparison |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, raw, text, signed, xz in rows:
        lines.append(
            f"| {n} | {raw / 1024:.1f} KiB | {text / 1024:.1f} KiB | "
            f"{signed / 1024:.1f} KiB | {xz / 1024:.1f} KiB |"
        )
    lines += ["", f"| {SIZES[-1]}-package payload, median of {RUNS} runs | ms |", "|---|---:|"]
    lines += [f"| {label} | {ms:.3f} |" for label, ms in times.items()]
    return "\n".join(lines)


def write_doc(table: str) -> None:
    env = (
        f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, "
        f"{platform.machine()}"
    )
    section = (
        f"{HEADING}\n\n"
        "Synthetic locks in the schema `hpm lock` writes (checked by `lock.from_dict`): "
        "each package is a locked package plus its pin, 70% PyPI (one file: its wheel's name and a "
        "random `sha256:` hash), 20% git (a commit SHA), 10% URL wheel (its own hash). Then "
        "`hpm lock --format b64` on a PyPI-like wheelhouse (`make_pypi_like`: cp310-cp314 x "
        "12 platforms, 60 wheels and an sdist a version, each its own sha256), a 150-pin "
        "closure; before = lock format 1, every file's hash of each version (what "
        "`uv pip compile --generate-hashes` lists from an index). Sizes are the "
        "base64 text carried in `HPM_LOCK_B64` "
        f"(warning above {payload.WARN_BYTES // 1024} KiB, refused above "
        f"{payload.MAX_BYTES // 1024} KiB). Times are in-process `payload.decode` "
        "(base64, inflate, digest, HMAC, JSON parse).\n"
        f"Measured on {env}.\n\n{table}\n"
    )
    write_section(section, HEADING)


FIXTURE_PINS = 150
X86, ARM = "x86_64-manylinux_2_28", "aarch64-manylinux_2_28"
#: the issue's stack: a FastAPI core, vector-db (qdrant, milvus), vision, rag
PYPI_STACK = ("fastapi", "qdrant-client", "pymilvus", "transformers", "pillow", "opencv-python-headless",
              "pandas", "scikit-learn", "sentence-transformers")


def _stack_figures(registry: Path, with_: str, source_args: list[str], python_version: str,
                   platforms: list[str], env: dict[str, str],
                   wheelhouse: Path | None = None) -> dict[str, int]:
    """``hpm lock --format b64`` for ``platforms`` (after), and the same closure as lock
    format 1 carried it (before: every hash ``uv pip compile --generate-hashes`` lists,
    the last --python-platform winning, as hpm did). From a ``wheelhouse`` uv hashes only
    the file it picks, so there "before" is every file of the version, as an index lists them."""
    import subprocess

    from hpm_boot.uvbin import find_uv

    argv = [sys.executable, "-m", "hpm_boot", "lock", "-r", str(registry), "--with", with_, *source_args,
            "--python-version", python_version, "--format", "b64"]
    argv += [a for p in platforms for a in ("--python-platform", p)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"hpm lock failed: {done.stderr.strip()[-2000:]}")
    text = done.stdout.strip()
    lock = payload.decode(text)
    requirements = [p["requirement"] for p in lock["packages"] if p["manager"] in ("uv", "pip")]
    old = compile_pins(requirements, lockmod.Target(python_version, platforms[-1]), find_uv(env),
                       source_args, env)
    if wheelhouse is not None:
        import hashlib

        every: dict[tuple[str, str], list[str]] = {}
        for f in sorted(wheelhouse.iterdir()):
            if f.is_file():
                dist, version = f.name.split("-")[:2]
                every.setdefault((dist.replace("_", "-"), version.removesuffix(".tar.gz")), []).append(
                    "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest())
        old = [lockmod.Pin(p.name, p.version, hashes=sorted(every.get((p.name, p.version or ""), p.hashes)))
               for p in old]
    before = {**{k: v for k, v in lock.items() if k != "targets"}, "version": 1,
              "target": {"python_version": python_version, "python_platform": platforms[-1]},
              "pins": [msgspec_builtins(p) for p in old]}
    before_text = payload.encode(before)
    return {"pins": len(lock["pins"]), "hashes_before": sum(len(p.hashes) for p in old),
            "bytes_before": len(before_text),
            "hashes_after": sum(len(p.get("files", [])) + len(p.get("hashes", [])) for p in lock["pins"]),
            "bytes_after": len(text)}


def msgspec_builtins(pin: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(pin)


#: the issue's fixture: {manylinux, musllinux, macOS, Windows} x {x86_64, aarch64/arm64}, one
#: manylinux level each (60 wheels of cp310-cp314 a version, 61 files with the sdist)
ISSUE_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64", "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "macosx_11_0_arm64", "macosx_10_12_x86_64",
    "win_amd64", "win_arm64", "win32", "manylinux_2_17_i686", "manylinux_2_17_ppc64le",
    "manylinux_2_17_s390x",
)


def measure_fixture(platforms: tuple[str, ...] = ISSUE_PLATFORMS) -> dict[str, dict[str, int]]:
    """The issue's size targets on a wheelhouse that looks like PyPI, offline."""
    import os
    import tempfile

    from tests.support.factory import Pkg, hermetic_env, make_pypi_like

    with tempfile.TemporaryDirectory() as tmp:
        deps = [f"hpmtest-dist{i:03d}" for i in range(FIXTURE_PINS - 1)]
        make_pypi_like(Path(tmp, "wh"), [Pkg("hpmtest-stack", "1.0.0", deps=deps),
                                         *(Pkg(d, f"1.{i % 7}.{i % 3}") for i, d in enumerate(deps))],
                       platforms=platforms)
        reg = Path(tmp, "reg")
        reg.mkdir()
        (reg / "hpmtest-stack.yaml").write_text("name: hpmtest-stack\nversion: 1.0.0\n"
                                                "sources:\n  prod: {type: pypi}\n")
        env = hermetic_env(Path(tmp, "cache"), os.environ)
        args = ["--no-index", "--find-links", str(Path(tmp, "wh"))]
        return {label: _stack_figures(reg, "hpmtest-stack", args, "3.12", platforms, env, Path(tmp, "wh"))
                for label, platforms in (("one platform", [X86]), ("two platforms", [X86, ARM]))}


def measure_pypi() -> dict[str, dict[str, int]]:
    """The same on the real PyPI (network): the issue's plugin stack, Python 3.12."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        reg = Path(tmp, "reg")
        reg.mkdir()
        for name in PYPI_STACK:
            (reg / f"{name}.yaml").write_text(f"name: {name}\nversion: 0.0.0\nsources:\n"
                                              f"  prod: {{type: pypi, version: \">=0\"}}\n")
        (reg / "hpm-registry.yaml").write_text("defaults:\n  with: [" + ", ".join(PYPI_STACK) + "]\n")
        env = {k: v for k, v in os.environ.items() if k not in ("UV_OFFLINE", "UV_NO_INDEX")}
        return {label: _stack_figures(reg, PYPI_STACK[0], [], "3.12", platforms, env)
                for label, platforms in (("one platform", [X86]), ("two platforms", [X86, ARM]))}


def render_stack(title: str, figures: dict[str, dict[str, int]]) -> str:
    lines = [f"| {title} | pins | hashes before | payload before | hashes after | payload after |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, f in figures.items():
        lines.append(f"| {label} | {f['pins']} | {f['hashes_before']} | {f['bytes_before'] / 1024:.1f} KiB | "
                     f"{f['hashes_after']} | {f['bytes_after'] / 1024:.1f} KiB |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--pypi" in argv:
        table = render_stack(f"real PyPI: {', '.join(PYPI_STACK)}; Python 3.12", measure_pypi())
        print(table)
        if "--write" in argv:
            write_section_append(table)
        return 0
    rows, times = measure()
    table = render(rows, times)
    print(table)
    fixture = measure_fixture()
    stack = render_stack(f"PyPI-like wheelhouse, {FIXTURE_PINS}-pin closure, Python 3.12", fixture)
    from tests.support.factory import PYPI_PLATFORMS

    dense = render_stack("the same, manylinux_2_17 and _2_28 wheels for each arch (2 files a target)",
                         measure_fixture(PYPI_PLATFORMS))
    stack += "\n\n" + dense
    print("\n" + stack)
    ok = (rows[-1][3] < payload.WARN_BYTES and times["decode+verify, with key"] < 1.0
          and fixture["one platform"]["bytes_after"] < 16 * 1024
          and fixture["two platforms"]["bytes_after"] < 24 * 1024)
    print("\nbudget (200 pkgs < 32 KiB, decode+verify < 1 ms; 150 pins < 16 KiB one platform, "
          "< 24 KiB two):", "OK" if ok else "MISSED")
    if "--no-write" not in argv:
        write_doc(table + "\n\n" + stack)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if ok else 1


PYPI_HEADING = "## Lock payload on the real PyPI (bench/payload_size.py --pypi)"


def write_section_append(table: str) -> None:
    """Record the --pypi figures in a section of their own."""
    write_section(f"{PYPI_HEADING}\n\nNeeds the network: `hpm lock` (uv pip compile) against pypi.org, "
                  f"hpm on Python {platform.python_version()}, {platform.machine()}. Before: lock format 1, "
                  "every file's hash of each pin (and a second --python-platform ignored); after: "
                  f"format {lockmod.LOCK_VERSION}, the files each target can install.\n\n{table}\n",
                  PYPI_HEADING)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

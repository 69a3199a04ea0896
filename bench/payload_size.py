"""Lock payload size and decode speed (``hpm_boot.payload``).

Builds synthetic but realistic locks of 10, 50 and 200 packages (each with a version,
a requirement, one random ``sha256:`` hash and a source), prints the payload size per
encoding and the median in-process decode+verify time of the 200-package payload, with
and without a key, then writes the figures into ``docs/benchmarks.md`` under
``## Lock payload (bench/payload_size.py)``.

Run: ``python bench/payload_size.py [--no-write]``.
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
        pin: dict[str, Any] = {"name": name, "version": version, "hashes": [f"sha256:{_hex(rng, 64)}"]}
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
        "version": 1,
        "hpm": "0.1.0",
        "mode": "prod",
        "target": {"python_version": "3.11", "python_platform": "x86_64-manylinux_2_28"},
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
        "each package is a locked package plus its pin, 70% PyPI (one random `sha256:` "
        "hash), 20% git (a commit SHA), 10% URL wheel (its own hash). Sizes are the "
        "base64 text carried in `HPM_LOCK_B64` "
        f"(warning above {payload.WARN_BYTES // 1024} KiB, refused above "
        f"{payload.MAX_BYTES // 1024} KiB). Times are in-process `payload.decode` "
        "(base64, inflate, digest, HMAC, JSON parse).\n"
        f"Measured on {env}.\n\n{table}\n"
    )
    write_section(section, HEADING)


def main(argv: list[str]) -> int:
    rows, times = measure()
    table = render(rows, times)
    print(table)
    ok = rows[-1][3] < payload.WARN_BYTES and times["decode+verify, with key"] < 5.0
    print("\nbudget (200 pkgs < 32 KiB, decode < 5 ms):", "OK" if ok else "MISSED")
    if "--no-write" not in argv:
        write_doc(table)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

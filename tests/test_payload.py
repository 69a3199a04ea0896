"""Tests of the lock payload envelope (hpm_boot.payload)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpm_boot import contract, payload
from hpm_boot.errors import DataError, HpmError, NotFoundError, SignatureError, UsageError

KEY = b"s3cret-key-for-tests"


def make_lock(n: int = 3) -> dict[str, Any]:
    packages = [
        {
            "name": f"pkg-{i:04d}",
            "version": "1.0.0",
            "requirement": f"pkg-{i:04d}==1.0.0",
            "hashes": [f"sha256:{i:064x}"],
            "source": {"type": "pypi", "package": f"pkg-{i:04d}", "version": "==1.0.0"},
        }
        for i in range(n)
    ]
    return {
        "version": 1,
        "mode": "prod",
        "packages": packages,
        "pins": [p["requirement"] for p in packages],
        "note": "ünïcode ✓",
    }


def build(body: bytes, prefix: str = payload.PREFIX) -> str:
    """A payload text around an arbitrary decompressed body."""
    return prefix + base64.b64encode(zlib.compress(body, 9)).decode()


def body_for(lock_bytes: bytes, **header: str) -> bytes:
    header.setdefault("sha256", "sha256:" + hashlib.sha256(lock_bytes).hexdigest())
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + lock_bytes


def raises(code: int, fn: Any, *args: Any, **kwargs: Any) -> HpmError:
    with pytest.raises(HpmError) as info:
        fn(*args, **kwargs)
    assert info.value.exit_code == code, info.value.message
    return info.value


# --------------------------------------------------------------------------- happy paths


def test_round_trip_unsigned_and_signed() -> None:
    lock = make_lock()
    assert payload.decode(payload.encode(lock)) == lock
    assert payload.decode(payload.encode(lock, KEY), KEY) == lock


def test_signed_payload_decodes_without_key() -> None:
    lock = make_lock()
    assert payload.decode(payload.encode(lock, KEY)) == lock


def test_deterministic() -> None:
    lock = make_lock(20)
    shuffled = dict(reversed(list(lock.items())))
    assert payload.encode(lock) == payload.encode(shuffled)
    assert payload.encode(lock, KEY) == payload.encode(shuffled, KEY)
    assert payload.encode(lock, KEY) != payload.encode(lock, b"other")


def test_prefix_and_standard_alphabet() -> None:
    text = payload.encode(make_lock(50), KEY)
    assert text.startswith("hpm1.")
    assert set(text[5:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def test_surrounding_whitespace_is_stripped() -> None:
    lock = make_lock()
    assert payload.decode("  \n" + payload.encode(lock) + "\r\n") == lock


def test_canonical_and_digest() -> None:
    obj = {"b": 1, "a": ["é", None]}
    assert payload.canonical_bytes(obj) == '{"a":["é",null],"b":1}'.encode()
    assert payload.digest(obj).startswith("sha256:")
    assert len(payload.digest(obj)) == len("sha256:") + 64
    assert payload.digest(obj) == payload.digest({"a": ["é", None], "b": 1})


def test_canonical_refuses_non_json() -> None:
    raises(65, payload.canonical_bytes, {"x": float("nan")})
    raises(65, payload.canonical_bytes, {"x": object()})


def test_size_check() -> None:
    assert payload.size_check("x" * payload.WARN_BYTES) is None
    warning = payload.size_check("x" * (payload.WARN_BYTES + 1))
    assert warning and "HPM_LOCK_FILE" in warning
    assert "accepts" in (payload.size_check("x" * (payload.MAX_BYTES + 1)) or "")


# --------------------------------------------------------------------------- bad input


def test_not_base64() -> None:
    err = raises(65, payload.decode, "hpm1.this is not base64!!")
    assert "base64" in err.message


def test_url_safe_alphabet_refused() -> None:
    text = payload.encode(make_lock(30))
    b64 = text[5:]
    urlsafe = b64.replace("+", "-").replace("/", "_")
    assert urlsafe != b64
    err = raises(65, payload.decode, "hpm1." + urlsafe)
    assert "URL-safe" in err.message


def test_whitespace_inside_refused() -> None:
    text = payload.encode(make_lock())
    err = raises(65, payload.decode, text[:20] + "\n" + text[20:])
    assert "whitespace" in err.message


def test_missing_padding_refused() -> None:
    text = payload.encode(make_lock())
    stripped = text.rstrip("=")
    if stripped == text:  # no padding in this one: make a lock that needs it
        text = payload.encode({**make_lock(), "pad": "x"})
        stripped = text.rstrip("=")
    assert stripped != text
    raises(65, payload.decode, stripped)


@pytest.mark.parametrize("cut", [1, 4, 8, 40, 100])
def test_truncated(cut: int) -> None:
    text = payload.encode(make_lock(10))
    raises(65, payload.decode, text[:-cut])


def test_truncated_at_block_boundary_says_truncated() -> None:
    data = zlib.compress(body_for(payload.canonical_bytes(make_lock(10))), 9)
    text = "hpm1." + base64.b64encode(data[: len(data) // 3 * 3 - 30]).decode()
    err = raises(65, payload.decode, text)
    assert "truncated" in err.message


def test_bit_flips_are_caught() -> None:
    text = payload.encode(make_lock(10), KEY)
    raw = bytearray(base64.b64decode(text[5:]))
    for pos in range(0, len(raw), 7):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x10
        bad = "hpm1." + base64.b64encode(bytes(flipped)).decode()
        raises(65, payload.decode, bad, KEY)


def test_digest_mismatch() -> None:
    lock_bytes = payload.canonical_bytes(make_lock())
    tampered = lock_bytes.replace(b"prod", b"dev_")
    text = build(body_for(lock_bytes).split(b"\n")[0] + b"\n" + tampered)
    err = raises(65, payload.decode, text)
    assert "digest mismatch" in err.message


def test_bomb_refused_quickly() -> None:
    comp = zlib.compressobj(9)
    header = body_for(b"{}").split(b"\n")[0] + b"\n"
    chunk = b" " * (1024 * 1024)
    data = comp.compress(header) + b"".join(comp.compress(chunk) for _ in range(64))
    data += comp.flush()
    text = "hpm1." + base64.b64encode(data).decode()
    assert len(text) < payload.MAX_BYTES  # ~87 KiB of text, 64 MiB inflated
    start = time.perf_counter()
    err = raises(65, payload.decode, text)
    assert time.perf_counter() - start < 0.5
    assert "bomb" in (err.details or "")


def test_text_too_large_refused_before_decoding() -> None:
    err = raises(65, payload.decode, "hpm1." + "A" * payload.MAX_BYTES)
    assert "HPM_LOCK_FILE" in err.message


def test_unknown_version() -> None:
    text = payload.encode(make_lock()).replace("hpm1.", "hpm2.", 1)
    err = raises(65, payload.decode, text)
    assert "version 2" in err.message and "v1" in err.message


def test_no_prefix() -> None:
    text = payload.encode(make_lock())[5:]
    err = raises(65, payload.decode, text)
    assert "hpm1." in err.message
    err = raises(65, payload.decode, json.dumps(make_lock()))
    assert "plain JSON" in err.message


def test_empty() -> None:
    raises(65, payload.decode, "  \n")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[1,2]\n{}", "found an array"),
        (b'{"sha256":"sha256:00"}\n{}', "64 hex"),
        (b'{"md5":"x"}\n{}', "unknown keys"),
        (b"{}\n{}", "no 'sha256'"),
        (b"just one line", "one line"),
        (b"not json\n{}", "not JSON"),
    ],
)
def test_wrong_envelope_shape(body: bytes, expected: str) -> None:
    err = raises(65, payload.decode, build(body))
    assert expected in err.message


def test_lock_must_be_object() -> None:
    err = raises(65, payload.decode, build(body_for(b"[1,2,3]")))
    assert "must be a JSON object, found an array" in err.message


def test_digest_covers_the_exact_bytes_not_a_canonical_form() -> None:
    """A payload written by another encoder decodes when its digest matches its bytes."""
    assert payload.decode(build(body_for(b'{"b":1, "a":2}'))) == {"a": 2, "b": 1}
    raises(65, payload.decode, build(body_for(b'{"b":1, "a":NaN}')))


# --------------------------------------------------------------------------- signatures


def test_unsigned_with_key_is_77() -> None:
    err = raises(77, payload.decode, payload.encode(make_lock()), KEY)
    assert "not signed" in err.message
    assert KEY.decode() not in err.message + (err.details or "")


def test_wrong_key_is_77() -> None:
    err = raises(77, payload.decode, payload.encode(make_lock(), KEY), b"wrong key")
    assert "signature" in err.message
    assert KEY.decode() not in err.message + (err.details or "")


def test_resigned_lock_with_fresh_digest_still_fails_signature() -> None:
    lock = make_lock()
    signed = payload.encode(lock, KEY)
    tampered = payload.encode({**lock, "mode": "dev"}, b"attacker")
    assert signed != tampered
    raises(77, payload.decode, tampered, KEY)


# --------------------------------------------------------------------------- environment


def test_read_key(tmp_path: Path) -> None:
    assert payload.read_key({}) is None
    assert payload.read_key({"HPM_LOCK_KEY": "abc"}) == b"abc"
    key_file = tmp_path / "key"
    key_file.write_bytes(b"from-file\n")
    assert payload.read_key({"HPM_LOCK_KEY_FILE": str(key_file)}) == b"from-file"


def test_read_key_errors(tmp_path: Path) -> None:
    err = raises(2, payload.read_key, {"HPM_LOCK_KEY": "k", "HPM_LOCK_KEY_FILE": "/x"})
    assert "HPM_LOCK_KEY" in err.message and "HPM_LOCK_KEY_FILE" in err.message
    raises(66, payload.read_key, {"HPM_LOCK_KEY_FILE": str(tmp_path / "missing")})
    raises(2, payload.read_key, {"HPM_LOCK_KEY": ""})
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    raises(2, payload.read_key, {"HPM_LOCK_KEY_FILE": str(empty)})


def test_load_from_env_none() -> None:
    assert payload.load_from_env({"PATH": "/bin"}) is None


def test_load_from_env_b64() -> None:
    lock = make_lock()
    raises(
        77, payload.load_from_env, {"HPM_LOCK_B64": payload.encode(lock, KEY), "HPM_LOCK_KEY": "x"}
    )
    result = payload.load_from_env(
        {"HPM_LOCK_B64": payload.encode(lock, KEY), "HPM_LOCK_KEY": KEY.decode()}
    )
    assert result == (lock, "HPM_LOCK_B64 (signature verified)")
    result = payload.load_from_env({"HPM_LOCK_B64": payload.encode(lock, KEY)})
    assert result is not None and result[0] == lock and "not checked" in result[1]


def test_load_from_env_both_is_usage_error() -> None:
    err = raises(2, payload.load_from_env, {"HPM_LOCK_B64": "x", "HPM_LOCK_FILE": "/y"})
    assert "HPM_LOCK_B64" in err.message and "HPM_LOCK_FILE" in err.message


def test_load_from_env_file_payload_and_plain(tmp_path: Path) -> None:
    lock = make_lock()
    pfile = tmp_path / "lock.b64"
    pfile.write_text(payload.encode(lock, KEY) + "\n")
    got = payload.load_from_env({"HPM_LOCK_FILE": str(pfile), "HPM_LOCK_KEY": KEY.decode()})
    assert got is not None and got[0] == lock and "payload" in got[1]

    jfile = tmp_path / "lock.json"
    jfile.write_text(json.dumps(lock, indent=2))
    got = payload.load_from_env({"HPM_LOCK_FILE": str(jfile)})
    assert got is not None and got[0] == lock and "plain JSON" in got[1]
    err = raises(77, payload.load_from_env, {"HPM_LOCK_FILE": str(jfile), "HPM_LOCK_KEY": "k"})
    assert "plain JSON" in err.message


def test_load_from_env_file_errors(tmp_path: Path) -> None:
    raises(66, payload.load_from_env, {"HPM_LOCK_FILE": str(tmp_path / "nope")})
    big = tmp_path / "big"
    with big.open("wb") as fh:
        fh.truncate(contract.MAX_LOCK_FILE_BYTES + 10)
    raises(65, payload.load_from_env, {"HPM_LOCK_FILE": str(big)})
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    err = raises(65, payload.load_from_env, {"HPM_LOCK_FILE": str(arr)})
    assert "found an array" in err.message
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    raises(65, payload.load_from_env, {"HPM_LOCK_FILE": str(bad)})


def test_key_file_missing_via_load(tmp_path: Path) -> None:
    env = {"HPM_LOCK_B64": payload.encode(make_lock()), "HPM_LOCK_KEY_FILE": str(tmp_path / "k")}
    raises(66, payload.load_from_env, env)


def test_hmac_not_imported_without_key() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from hpm_boot import payload; "
        "payload.decode(payload.encode({'version': 1})); "
        "print('hmac' in sys.modules, 'typing' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split()[0] == "False"


# --------------------------------------------------------------------------- property


VALID = payload.encode(make_lock(5), KEY)
VALID_BODY = body_for(payload.canonical_bytes(make_lock(5)))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_. \n{}\x00é"

edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "delete", "insert", "truncate"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(ALPHABET),
    ),
    min_size=1,
    max_size=6,
)


def mutate(text: str, ops: list[tuple[str, int, str]]) -> str:
    for op, pos, char in ops:
        i = pos % (len(text) + 1)
        if op == "flip" and text:
            i = pos % len(text)
            text = text[:i] + char + text[i + 1 :]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + char + text[i:]
        else:
            text = text[:i]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=edits, with_key=st.booleans())
def test_text_mutations_only_raise_hpm_errors(
    ops: list[tuple[str, int, str]], with_key: bool
) -> None:
    try:
        result = payload.decode(mutate(VALID, ops), KEY if with_key else None)
    except HpmError:
        return
    assert isinstance(result, dict)


@settings(max_examples=400, deadline=None)
@given(
    pos=st.integers(min_value=0, max_value=len(VALID_BODY)),
    junk=st.binary(max_size=8),
    cut=st.integers(min_value=0, max_value=len(VALID_BODY)),
    with_key=st.booleans(),
)
def test_body_mutations_only_raise_hpm_errors(
    pos: int, junk: bytes, cut: int, with_key: bool
) -> None:
    body = (VALID_BODY[:pos] + junk + VALID_BODY[pos + len(junk) :])[: max(cut, pos)]
    try:
        result = payload.decode(build(body), KEY if with_key else None)
    except HpmError:
        return
    assert isinstance(result, dict)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bodies_only_raise_hpm_errors(body: bytes) -> None:
    with pytest.raises(HpmError):
        payload.decode(build(body))


@settings(max_examples=100, deadline=None)
@given(
    lock=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_round_trip_property(lock: dict[str, Any]) -> None:
    try:
        text = payload.encode(lock)
    except DataError:  # lone surrogates cannot be encoded as UTF-8
        return
    assert payload.decode(text) == lock


def test_error_types_are_hpm_errors() -> None:
    for cls in (DataError, SignatureError, UsageError, NotFoundError):
        assert issubclass(cls, HpmError)

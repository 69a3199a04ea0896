"""The lock payload: how a lock travels into a container as ``HPM_LOCK_B64`` or a file.

Standard library only; this runs at every container start. ``hmac`` is imported only
when a key is in play. The lock itself is handled as a plain JSON-able dict; its schema
belongs to ``lock.py``.

Envelope v1 (see docs/lock-format.md, "Payload envelope")::

    hpm1.<standard base64 of zlib(level 9) of BODY>
    BODY   = HEADER "\\n" LOCK
    HEADER = {"hmac":"hmac-sha256:<hex>","sha256":"sha256:<hex>"}   (compact JSON; hmac optional)
    LOCK   = canonical_bytes(lock)

``sha256`` is the SHA-256 of LOCK, i.e. ``digest(lock)``. ``hmac`` is
HMAC-SHA256(key, b"hpm1\\n" + LOCK). Both are checked on the raw LOCK bytes before
they are parsed. Without a key a signed payload still decodes (its signature is not
checked); with a key an unsigned or wrongly signed payload is refused (exit 77).
"""

from __future__ import annotations

import sys

from hpm_boot import contract
from hpm_boot.errors import DataError, NotFoundError, SignatureError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

PREFIX = "hpm1."
"""Text marker of envelope v1, readable without decoding anything."""
READS_VERSIONS = (1,)
WARN_BYTES = 32 * 1024
"""Payload text size above which ``size_check`` warns."""
MAX_BYTES = 120 * 1024
"""Largest payload text accepted from an environment variable."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest decompressed body; a bigger one is refused without being allocated."""
ZLIB_LEVEL = 9
SIG_DOMAIN = b"hpm1\n"
"""Prefixed to LOCK before signing, so a signature means nothing outside hpm v1."""
DIGEST_ALG = "sha256:"
HMAC_ALG = "hmac-sha256:"
HEADER_KEYS = frozenset({"sha256", "hmac"})


_FILE_HINT = f"mount the lock as a file and point {contract.LOCK_FILE} at it"
_REGEN_HINT = "regenerate it with `hpm lock --format b64`"


# --------------------------------------------------------------------------- canonical


def loads(text: str) -> Any:
    """``json.loads`` (strict: no NaN or Infinity) through ``_json``'s C scanner."""
    try:
        import _json

        scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(_ScanContext())
    except (ImportError, AttributeError):  # not CPython
        import json

        return json.loads(text, parse_constant=_ScanContext.parse_constant)
    try:
        value, end = scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"expected a JSON value at position {exc.value}") from None
    if text[end:].strip():
        raise ValueError(f"extra data after the JSON value at position {end}")
    return value


class _ScanContext:
    """What ``_json.make_scanner`` reads off a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] | None = None

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")


def canonical_bytes(obj: Any) -> bytes:
    """The one byte encoding of a JSON value that digests and signatures cover.

    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in
    UTF-8; NaN and infinities are refused (they are not JSON).
    """
    import json  # writing a lock is not on the start path

    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise DataError(f"lock is not plain JSON data: {exc}") from None


# The C modules under hashlib, base64 and json, imported where an envelope is handled:
# a plain JSON lock file needs none of them.
def _sha256(data: bytes) -> Any:
    """A SHA-256 object of ``data``: ``hashlib.sha256`` without ``hashlib``."""
    try:
        if sys.version_info >= (3, 12):
            from _sha2 import sha256
        else:
            from _sha256 import sha256
    except ImportError:  # not CPython
        from hashlib import sha256
    return sha256(data)


def digest(obj: Any) -> str:
    """``"sha256:<hex>"`` of ``canonical_bytes(obj)``: the identity of a lock."""
    return DIGEST_ALG + _sha256(canonical_bytes(obj)).hexdigest()


def _sign(lock_bytes: bytes, key: bytes) -> str:
    import hmac

    return HMAC_ALG + hmac.new(key, SIG_DOMAIN + lock_bytes, "sha256").hexdigest()


# --------------------------------------------------------------------------- encode


def encode(lock: dict[str, Any], key: bytes | None = None) -> str:
    """Lock -> ``hpm1.<base64>`` payload text; signed when ``key`` is given.

    Deterministic: the same lock and key give the same text (with the same zlib build).
    """
    if not isinstance(lock, dict):
        raise DataError(f"a lock must be a JSON object, found {kind(lock)}")
    if key is not None and not key:
        raise UsageError("the signing key is empty", "set a non-empty key or none at all")
    lock_bytes = canonical_bytes(lock)
    header: dict[str, str] = {"sha256": DIGEST_ALG + _sha256(lock_bytes).hexdigest()}
    if key is not None:
        header["hmac"] = _sign(lock_bytes, key)
    body = canonical_bytes(header) + b"\n" + lock_bytes
    if len(body) > MAX_BODY_BYTES:
        raise DataError(
            f"lock is too large to carry: {len(body)} bytes, "
            f"the limit is {MAX_BODY_BYTES} bytes uncompressed"
        )
    import binascii
    import zlib

    return PREFIX + binascii.b2a_base64(zlib.compress(body, ZLIB_LEVEL), newline=False).decode("ascii")


def size_check(b64_text: str) -> str | None:
    """A warning for the caller to print when a payload is large for an environ var."""
    size = len(b64_text.strip())
    if size > MAX_BYTES:
        return (
            f"lock payload is {size / 1024:.1f} KiB, above the {MAX_BYTES // 1024} KiB "
            f"that {contract.LOCK_B64} accepts: {_FILE_HINT} instead"
        )
    if size > WARN_BYTES:
        return (
            f"lock payload is {size / 1024:.1f} KiB; environment variables above "
            f"{WARN_BYTES // 1024} KiB strain some platforms (container specs, process "
            f"listings): {_FILE_HINT} instead"
        )
    return None


def check_carriable(b64_text: str) -> str | None:
    """Refuse a payload too large for ``HPM_LOCK_B64`` (DataError, 65); else the size
    warning for the caller to print, if any (``size_check``)."""
    warning = size_check(b64_text)
    if len(b64_text.strip()) > MAX_BYTES:
        raise DataError(
            warning or f"the lock payload is above {MAX_BYTES // 1024} KiB",
            "an environment variable cannot carry it safely (Linux caps one variable at 128 KiB; "
            "Kubernetes pods fail to start past it). Write the lock as a file (hpm lock -o "
            f"hpm.lock.json), mount it, and set {contract.LOCK_FILE} to its path, e.g. "
            f"-v $PWD/hpm.lock.json:/etc/hpm/lock.json:ro -e {contract.LOCK_FILE}=/etc/hpm/lock.json",
        )
    return warning


# --------------------------------------------------------------------------- decode


def decode(
    text: str,
    key: bytes | None = None,
    *,
    source: str = "lock payload",
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """``decode_with_state`` without the signature state: the lock alone."""
    return decode_with_state(text, key, source=source, max_bytes=max_bytes)[0]


def decode_with_state(
    text: str,
    key: bytes | None = None,
    *,
    source: str = "lock payload",
    max_bytes: int = MAX_BYTES,
) -> tuple[dict[str, Any], bool]:
    """Payload text -> (lock dict, whether the payload carries a signature), after every check.

    With ``key``, the payload must carry a matching signature (else SignatureError, 77).
    Without ``key``, a signed payload still decodes and its signature is NOT checked:
    only the digest (integrity, not authenticity) is. ``source`` names the origin in
    messages; ``max_bytes`` caps the text length.
    """
    b64 = _strip_prefix(_check_text(text, source, max_bytes), source)
    body = _decompress(_b64decode(b64, source), source)
    header, lock_bytes = _split_body(body, source)
    _check_digest(header["sha256"], lock_bytes, source)
    if key is not None:
        _check_signature(header.get("hmac"), lock_bytes, key, source)
    return _parse_lock(lock_bytes, source), "hmac" in header


def _check_text(text: str, source: str, max_bytes: int) -> str:
    if not isinstance(text, str):
        raise DataError(f"{source}: expected text, found {kind(text)}")
    text = text.strip()
    if not text:
        raise DataError(f"{source} is empty", _REGEN_HINT)
    if len(text) > max_bytes:
        raise DataError(
            f"{source} is too large: {len(text) / 1024:.1f} KiB, the limit is "
            f"{max_bytes // 1024} KiB; {_FILE_HINT}"
        )
    return text


def _strip_prefix(text: str, source: str) -> str:
    head, dot, rest = text.partition(".")
    if dot and head == PREFIX[:-1]:
        return rest
    readable = ", ".join(f"v{v} (prefix hpm{v}.)" for v in READS_VERSIONS)
    version = head[3:]
    if dot and head.startswith("hpm") and version.isascii() and version.isdigit():
        raise DataError(
            f"{source}: envelope version {version} is not readable by this hpm, "
            f"which reads {readable}",
            "upgrade hpm, or write the lock with the hpm version that runs here",
        )
    if text.startswith(("{", "[")):
        raise DataError(
            f"{source} looks like plain JSON, not a payload: {_FILE_HINT}, "
            f"or encode it with `hpm lock --format b64`"
        )
    raise DataError(
        f"{source} is not an hpm lock payload: it must start with {PREFIX!r}",
        f"this hpm reads {readable}; {_REGEN_HINT}",
    )


def _b64decode(b64: str, source: str) -> bytes:
    import binascii

    try:
        if sys.version_info >= (3, 11):
            return binascii.a2b_base64(b64, strict_mode=True)
        import base64

        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataError(f"{source} is not valid base64: {_b64_hint(b64)}", str(exc)) from None


def _b64_hint(b64: str) -> str:
    if not b64.isascii():
        return "it contains non-ASCII characters"
    if "-" in b64 or "_" in b64:
        return "it uses the URL-safe alphabet ('-', '_'); hpm uses the standard one"
    if any(c.isspace() for c in b64):
        return "it contains whitespace or line breaks; paste it as one line"
    if len(b64) % 4:
        return "it is truncated or lost its '=' padding; copy it whole"
    return "it contains characters outside the standard base64 alphabet"


def _decompress(data: bytes, source: str) -> bytes:
    import zlib

    dec = zlib.decompressobj()
    try:
        body = dec.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise DataError(f"{source} is corrupt: cannot decompress it", str(exc)) from None
    if len(body) > MAX_BODY_BYTES:
        raise DataError(
            f"{source} inflates beyond {MAX_BODY_BYTES // (1024 * 1024)} MiB: refused",
            "a genuine lock is far smaller; this looks like a decompression bomb",
        )
    if not dec.eof:
        raise DataError(f"{source} is truncated: the compressed data ends early; copy it whole")
    if dec.unused_data:
        raise DataError(f"{source} is corrupt: extra bytes after the compressed data")
    return body


def _split_body(body: bytes, source: str) -> tuple[dict[str, str], bytes]:
    head, nl, lock_bytes = body.partition(b"\n")
    if not nl:
        raise DataError(f"{source}: envelope v1 needs a header line and a lock, found one line")
    try:
        header = loads(head.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}: envelope header is not JSON", str(exc)) from None
    return _check_header(header, source), lock_bytes


def _check_header(header: object, source: str) -> dict[str, str]:
    expected = 'an object {"sha256": "sha256:<hex>", "hmac"?: "hmac-sha256:<hex>"}'
    if not isinstance(header, dict):
        raise DataError(f"{source}: envelope header must be {expected}, found {kind(header)}")
    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown or "sha256" not in header:
        found = f"unknown keys {unknown}" if unknown else "no 'sha256' key"
        raise DataError(f"{source}: envelope header must be {expected}, found {found}")
    for field, alg in (("sha256", DIGEST_ALG), ("hmac", HMAC_ALG)):
        if field in header and not _is_hex_digest(header[field], alg):
            raise DataError(
                f"{source}: envelope header {field!r} must be '{alg}<64 hex digits>', "
                f"found {_short(header[field])}"
            )
    return header


def _is_hex_digest(value: object, alg: str) -> bool:
    if not isinstance(value, str) or not value.startswith(alg):
        return False
    hexpart = value[len(alg) :]
    return len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def _check_digest(expected: str, lock_bytes: bytes, source: str) -> None:
    found = DIGEST_ALG + _sha256(lock_bytes).hexdigest()
    if found != expected:
        raise DataError(
            f"{source}: digest mismatch: the lock was altered or corrupted in transit; "
            f"{_REGEN_HINT}",
            f"header says {expected}, content is {found}",
        )


def _check_signature(sig: str | None, lock_bytes: bytes, key: bytes, source: str) -> None:
    import hmac

    key_vars = f"{contract.LOCK_KEY} or {contract.LOCK_KEY_FILE}"
    if sig is None:
        raise SignatureError(
            f"{source} is not signed, but a signing key is set ({key_vars})",
            "sign it: run `hpm lock --format b64` with the same key set; "
            f"or unset {key_vars} to accept unsigned locks",
        )
    if not hmac.compare_digest(sig, _sign(lock_bytes, key)):
        raise SignatureError(
            f"{source}: signature does not match the key set in {key_vars}",
            "it was signed with another key or altered after signing; "
            "re-sign it with the key this environment is given",
        )


def _parse_lock(lock_bytes: bytes, source: str) -> dict[str, Any]:
    try:
        lock = loads(lock_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}: the lock is not JSON", str(exc)) from None
    if not isinstance(lock, dict):
        raise DataError(f"{source}: the lock must be a JSON object, found {kind(lock)}")
    return lock


def kind(value: object, *, yaml: bool = False) -> str:
    """What kind of JSON value ``value`` is, with its article ("an object", "a number");
    ``yaml`` says "a mapping" and "a list" instead. Anything else: its type's name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list" if yaml else "an array"
    if isinstance(value, dict):
        return "a mapping" if yaml else "an object"
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- environment


def read_key(environ: Mapping[str, str]) -> bytes | None:
    """The signing key from ``HPM_LOCK_KEY`` (the text) or ``HPM_LOCK_KEY_FILE``.

    A key file loses its trailing newline(s). Both set -> UsageError; the file missing
    or unreadable -> NotFoundError; an empty key -> UsageError (an empty secret must not
    silently turn signature checks off). Key material never appears in messages.
    """
    if contract.LOCK_KEY in environ and contract.LOCK_KEY_FILE in environ:
        raise UsageError(f"both {contract.LOCK_KEY} and {contract.LOCK_KEY_FILE} are set: set only one")
    if contract.LOCK_KEY in environ:
        # a trailing newline is not part of the key, as in a key file: `kubectl create
        # secret --from-file` and `$(cat key)` differ only by it
        key = environ[contract.LOCK_KEY].encode("utf-8", "surrogateescape").rstrip(b"\r\n")
        return _nonempty_key(key, contract.LOCK_KEY)
    if contract.LOCK_KEY_FILE in environ:
        path = environ[contract.LOCK_KEY_FILE]
        return read_key_file(path, f"{contract.LOCK_KEY_FILE}={path}")
    return None


def read_key_file(path: str, where: str) -> bytes:
    """The key in the file ``path`` (trailing newlines dropped); ``where`` names the
    setting that gave the path in messages (``--sign-key-file F``, ``HPM_LOCK_KEY_FILE=F``)."""
    key = _read_file(path, where, 1024 * 1024).rstrip(b"\r\n")
    return _nonempty_key(key, where)


def _nonempty_key(key: bytes, where: str) -> bytes:
    if not key:
        raise UsageError(
            f"{where}: the key is empty",
            "provide the key, or leave it unset to accept unsigned locks",
        )
    return key


def _read_file(path: str, source: str, limit: int, data: bytes | None = None) -> bytes:
    """The file ``path``, refused past ``limit`` bytes; ``data``: what the caller has read
    of it already (at most ``limit`` + 1 bytes: enough to see it is too large)."""
    if not path:
        raise UsageError(f"{source} is empty: give it a file path")
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{source}: no such file") from None
        except OSError as exc:
            raise NotFoundError(f"{source}: cannot read it: {exc.strerror}") from None
    if len(data) > limit:
        raise DataError(
            f"{source} is too large: more than {limit // (1024 * 1024)} MiB",
            "a lock file holds one lock, as JSON or as a payload",
        )
    return data


def load_from_env(environ: Mapping[str, str], data: bytes | None = None) -> tuple[dict[str, Any], str] | None:
    """(lock, source description) from ``HPM_LOCK_FILE`` or ``HPM_LOCK_B64``; else None.

    Both set -> UsageError (exit 2). The key comes from ``read_key(environ)``. ``data``:
    the lock file's bytes when the caller has read them (``load_file``).
    """
    if contract.LOCK_FILE in environ and contract.LOCK_B64 in environ:
        raise UsageError(f"both {contract.LOCK_FILE} and {contract.LOCK_B64} are set: set only one")
    if contract.LOCK_FILE not in environ and contract.LOCK_B64 not in environ:
        return None
    key = read_key(environ)
    if contract.LOCK_B64 in environ:
        lock, signed = decode_with_state(environ[contract.LOCK_B64], key, source=contract.LOCK_B64)
        return lock, f"{contract.LOCK_B64} ({_sig_state(signed, key)})"
    path = environ[contract.LOCK_FILE]
    return load_file(path, key, f"{contract.LOCK_FILE}={path}", data)


def load_lock(environ: Mapping[str, str], path: str | None = None, flag: str = "--lock",
              data: bytes | None = None) -> tuple[dict[str, Any], str] | None:
    """(lock, source description) from the file ``path`` given with ``flag`` when there is
    one, else from the environment (``load_from_env``); the key always comes from ``environ``.
    ``data``: the lock file's bytes when the caller has read them (``load_file``)."""
    if path is None:
        return load_from_env(environ, data)
    return load_file(path, read_key(environ), f"{flag} {path}", data)


def load_file(path: str, key: bytes | None, source: str,
              data: bytes | None = None) -> tuple[dict[str, Any], str]:
    """A lock file, payload or plain JSON (detected); ``source`` names it in messages.
    ``data``: its bytes when the caller has read them (``warmstart.lock_input`` reads at
    most one byte past the limit, which this refuses): the file is not read again."""
    raw = _read_file(path, source, contract.MAX_LOCK_FILE_BYTES, data)
    try:
        # not decode("utf-8-sig"): that codec is a module import of its own
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text", str(exc)) from None
    if not text.startswith(("{", "[")):
        lock, signed = decode_with_state(text, key, source=source, max_bytes=contract.MAX_LOCK_FILE_BYTES)
        return lock, f"{source} (payload, {_sig_state(signed, key)})"
    if key is not None:
        raise SignatureError(
            f"{source} is a plain JSON lock, which carries no signature, "
            f"but a signing key is set ({contract.LOCK_KEY} or {contract.LOCK_KEY_FILE})",
            "mount a signed payload (`hpm lock --format b64` with the key set) instead",
        )
    return _parse_plain(text, source), f"{source} (plain JSON, no digest)"


def _parse_plain(text: str, source: str) -> dict[str, Any]:
    try:
        lock = loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}: the lock is not valid JSON", str(exc)) from None
    if not isinstance(lock, dict):
        raise DataError(f"{source}: the lock must be a JSON object, found {kind(lock)}")
    return lock


def _sig_state(signed: bool, key: bytes | None) -> str:
    if key is not None:
        return "signature verified"
    return "signed, signature not checked: no key set" if signed else "unsigned"

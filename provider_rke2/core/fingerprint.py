"""HMAC-SHA256 (RFC 2104) on the interpreter's built-in SHA-256.

The `hashlib` import loads OpenSSL's libcrypto, a few milliseconds of every boot for one
digest; CPython's own SHA-256 module gives the same bytes (tests/core/test_render.py compares
with `hmac`)."""

from __future__ import annotations

try:  # the built-in module: _sha2 from 3.12, _sha256 before
    from _sha2 import sha256
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

_BLOCK = 64
_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


def keyed(key: bytes, message: bytes) -> str:
    """hmac.new(key, message, hashlib.sha256).hexdigest()."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = sha256(key.translate(_INNER) + message).digest()
    return sha256(key.translate(_OUTER) + inner).hexdigest()

"""Opaque page tokens: base64 of JSON {offset, hash of the query}.

The hash binds a token to the query that issued it, so a token replayed with another filter,
order or scope is refused (400) instead of silently paging through a different result set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from ledgerflow.errors import InvalidInputError

_VERSION = 1


def query_fingerprint(*parts: Any) -> str:
    """A short stable hash of the query's defining parts (not max_results: pages may change size)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def encode_token(offset: int, fingerprint: str) -> str:
    body = json.dumps({"v": _VERSION, "offset": offset, "q": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_token(token: str | None, fingerprint: str) -> int:
    """The offset a token resumes at (0 without a token); 400 for a foreign or damaged token."""
    if token is None or token == "":
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        offset, bound_to, version = body["offset"], body["q"], body["v"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidInputError("invalid page_token: not a token issued by this server") from None
    if version != _VERSION or not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**53:
        raise InvalidInputError("invalid page_token: not a token issued by this server")
    if bound_to != fingerprint:
        raise InvalidInputError("invalid page_token: it was issued for a different query (filter, order_by, "
                                "scope or view type changed); start again without a page_token")
    return offset

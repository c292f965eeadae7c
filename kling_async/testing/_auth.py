"""Bearer authentication for the sandbox [auth], with a stdlib HS256 JWT check.

The JWT is verified here with ``hmac``/``hashlib``/``base64`` rather than PyJWT so that the sandbox
shares no code with the SDK's signer: a wrong claim or header in the SDK is caught, not mirrored.

Sources:
[auth] https://kling.ai/document-api/api/get-started/authentication
[errors] https://kling.ai/document-api/api/get-started/error-codes
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from typing import Any, Final

# [auth] (INFERRED): clock-skew tolerance on nbf only, in seconds (exp is strict).
LEEWAY: Final = 5.0


class AuthError(Exception):
    """Authentication refused; ``code`` is the [errors] code (HTTP 401)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _b64url(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _json_segment(segment: str) -> dict[str, Any]:
    value = json.loads(_b64url(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def check_authorization(
    header: str | None,
    *,
    api_keys: Collection[str],
    access_keys: Mapping[str, str],
    now: float,
) -> None:
    """Accept an ``Authorization`` header or raise :class:`AuthError`.

    Args:
        header: The raw header value, or None when absent.
        api_keys: Bearer API keys accepted as is [auth].
        access_keys: AccessKey → SecretKey; a Bearer HS256 JWT with ``iss`` = AccessKey,
            signed with the SecretKey, is accepted while ``nbf`` ≤ now < ``exp`` [auth].
        now: Wall-clock time, epoch seconds.

    Raises:
        AuthError: 1001 missing header, 1002 malformed / unknown key / bad signature,
            1003 JWT not yet valid (nbf), 1004 JWT expired (exp) [errors].
    """
    if not header:  # [errors]: 1001 Authorization empty
        raise AuthError(1001, "Authorization is empty")
    scheme, _, token = header.partition(" ")
    # [auth]: "Authorization: Bearer <token>" with one space
    if scheme != "Bearer" or not token or token != token.strip():
        raise AuthError(1002, "Authorization is invalid: expected 'Bearer <token>'")
    if token in api_keys:  # [auth]: API key sent directly as the bearer token
        return
    parts = token.split(".")
    if len(parts) != 3 or not access_keys:
        raise AuthError(1002, "Authorization is invalid: unknown API key")
    try:
        header_obj = _json_segment(parts[0])
        claims = _json_segment(parts[1])
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error, UnicodeError):
        raise AuthError(1002, "Authorization is invalid: malformed JWT") from None
    if header_obj.get("alg") != "HS256":  # [auth]: header {"alg":"HS256","typ":"JWT"}
        raise AuthError(
            1002, f"Authorization is invalid: alg must be HS256, got {header_obj.get('alg')!r}"
        )
    issuer = claims.get("iss")
    secret = access_keys.get(issuer) if isinstance(issuer, str) else None
    if secret is None:  # [auth]: iss = AccessKey
        raise AuthError(1002, "Authorization is invalid: unknown access key (iss)")
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):  # [auth]: HMAC-SHA256 with SecretKey
        raise AuthError(1002, "Authorization is invalid: bad JWT signature")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError(1002, "Authorization is invalid: JWT exp claim missing")
    if nbf is not None and (not isinstance(nbf, int | float) or isinstance(nbf, bool)):
        raise AuthError(1002, "Authorization is invalid: JWT nbf claim is not a number")
    if nbf is not None and nbf > now + LEEWAY:  # [errors]: 1003 not yet valid (nbf)
        raise AuthError(1003, "Authorization is not yet valid")
    if exp <= now:  # [errors]: 1004 expired (exp)
        raise AuthError(1004, "Authorization has expired")

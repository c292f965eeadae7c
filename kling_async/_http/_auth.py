"""Authentication: a Bearer API key, or AccessKey + SecretKey signed into an HS256 JWT.

Source: https://kling.ai/document-api/api/get-started/authentication [auth].

Sources:
[auth] https://kling.ai/document-api/api/get-started/authentication
"""

from __future__ import annotations

import hashlib
import time
import warnings

import attrs

from .._redact import add_secret

__all__ = ["ApiKeyAuth", "Auth", "JwtAuth"]

JWT_LIFETIME = 1800.0  # seconds; [auth]: exp = now + 1800 s (the documented example)
JWT_NOT_BEFORE_SKEW = 5.0  # seconds; [auth]: nbf = now − 5 s
JWT_RENEW_MARGIN = 300.0  # seconds; re-sign this long before exp ([auth] INFERRED)


@attrs.define
class ApiKeyAuth:
    """``Authorization: Bearer <API key>`` [auth]. The key never appears in reprs."""

    _api_key: str = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        add_secret(self._api_key)  # masked in every error message from now on

    def header(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self._api_key}"

    def key_id(self) -> str:
        """Who the key belongs to, without the key: a hash of it."""
        return "sha256:" + hashlib.sha256(self._api_key.encode()).hexdigest()[:16]

    def invalidate(self) -> bool:
        """Nothing to renew for a static key. Returns ``False``."""
        return False


@attrs.define
class JwtAuth:
    """AccessKey + SecretKey → HS256 JWT with ``iss``/``exp``/``nbf`` [auth].

    The token is cached and re-signed :data:`JWT_RENEW_MARGIN` seconds before it expires, and
    at once after :meth:`invalidate` (called on a 1004 "authorization expired" answer).
    """

    _access_key: str = attrs.field(repr=False)
    _secret_key: str = attrs.field(repr=False)
    lifetime: float = JWT_LIFETIME
    _token: str | None = attrs.field(default=None, repr=False)
    _expires_at: float = attrs.field(default=0.0, repr=False)

    def __attrs_post_init__(self) -> None:
        add_secret(self._secret_key)  # masked in every error message (tokens are JWT-shaped)

    def header(self) -> str:
        """The ``Authorization`` header value, signing a new token when needed."""
        now = time.time()
        if self._token is None or now >= self._expires_at - JWT_RENEW_MARGIN:
            # PyJWT (and cryptography behind it) is imported on the first signature only: a
            # client or CLI process with an API key never pays its ~60 ms import.
            import jwt
            from jwt.warnings import InsecureKeyLengthWarning

            exp = now + self.lifetime
            with warnings.catch_warnings():
                # The SecretKey is issued by Kling; its length is not the user's choice, so
                # PyJWT's short-HMAC-key warning would only be noise.
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                self._token = jwt.encode(
                    {
                        "iss": self._access_key,
                        "exp": int(exp),
                        "nbf": int(now - JWT_NOT_BEFORE_SKEW),
                    },
                    self._secret_key,
                    algorithm="HS256",
                    headers={"alg": "HS256", "typ": "JWT"},
                )
            self._expires_at = exp
        return f"Bearer {self._token}"

    def key_id(self) -> str:
        """Who the key belongs to: the AccessKey (an id, not the secret)."""
        return self._access_key

    def invalidate(self) -> bool:
        """Drop the cached token so the next request signs a new one. Returns ``True``."""
        self._token = None
        return True


Auth = ApiKeyAuth | JwtAuth

"""Authentication headers: Bearer API key, and AK/SK signed into an HS256 JWT (reference §3)."""

from __future__ import annotations

import time
import types

import jwt
import pytest

import kling_async._http._auth
from kling_async._http._auth import JWT_RENEW_MARGIN, ApiKeyAuth, JwtAuth

ACCESS = "AK-test-access-key-0123"
SECRET = "SK-test-secret-key-0123456789abcdef0123456789"  # ≥ 32 bytes, as real keys


def _token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    assert scheme == "Bearer"
    return token


def test_api_key_header_is_bearer_key() -> None:
    """ApiKeyAuth sends 'Bearer <key>' with one space and has nothing to renew."""
    auth = ApiKeyAuth("my-api-key")
    assert auth.header() == "Bearer my-api-key"
    assert auth.invalidate() is False
    assert auth.header() == "Bearer my-api-key"


def test_jwt_header_carries_documented_claims() -> None:
    """The JWT is HS256-signed with the secret, iss=access key, exp≈now+1800, nbf≈now−5."""
    before = time.time()
    header = JwtAuth(ACCESS, SECRET).header()
    after = time.time()
    token = _token(header)
    claims = jwt.decode(token, key=SECRET, algorithms=["HS256"], options={"verify_signature": True})
    assert claims["iss"] == ACCESS
    assert int(before + 1800) - 1 <= claims["exp"] <= after + 1800
    assert int(before - 5) - 1 <= claims["nbf"] <= after - 5
    assert set(claims) == {"iss", "exp", "nbf"}
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_jwt_signed_with_another_secret_is_rejected() -> None:
    """The token's signature only verifies with the configured secret key."""
    token = _token(JwtAuth(ACCESS, SECRET).header())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, key="wrong-secret-key-0123456789abcdef0123456789", algorithms=["HS256"])


def test_jwt_is_cached() -> None:
    """Two headers in a row carry the same token."""
    auth = JwtAuth(ACCESS, SECRET)
    assert auth.header() == auth.header()


class _Clock:
    """A settable stand-in for ``time.time`` inside kling_async._http._auth."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(kling_async._http._auth, "time", types.SimpleNamespace(time=self))

    def __call__(self) -> float:
        return self.now


def test_jwt_invalidate_forces_a_new_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """After invalidate() (a 1004 answer) the next header is a freshly signed token."""
    clock = _Clock(monkeypatch)
    auth = JwtAuth(ACCESS, SECRET, lifetime=1000.0)
    first = auth.header()
    clock.now += 2  # exp/nbf have one-second resolution: a new token would differ
    assert auth.header() == first  # still cached
    assert auth.invalidate() is True
    second = auth.header()
    assert second != first
    claims = jwt.decode(_token(second), key=SECRET, algorithms=["HS256"])
    assert claims["iss"] == ACCESS


def test_jwt_is_renewed_near_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is reused until JWT_RENEW_MARGIN (300 s) before exp, then re-signed."""
    clock = _Clock(monkeypatch)
    auth = JwtAuth(ACCESS, SECRET)
    first = auth.header()
    clock.now += 1800 - JWT_RENEW_MARGIN - 2
    assert auth.header() == first
    clock.now += 3
    renewed = auth.header()
    assert renewed != first
    claims = jwt.decode(
        _token(renewed),
        key=SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims["exp"] == int(clock.now + 1800)


def test_reprs_hide_secrets() -> None:
    """repr() of either auth shows neither the API key, the access key nor the secret key."""
    api = ApiKeyAuth("sk-very-secret-api-key")
    assert "sk-very-secret-api-key" not in repr(api)
    jwt_auth = JwtAuth(ACCESS, SECRET)
    jwt_auth.header()
    text = repr(jwt_auth) + str(jwt_auth)
    assert ACCESS not in text
    assert SECRET not in text
    assert "eyJ" not in text  # nor the signed token


def test_short_secret_key_signs_without_warning() -> None:
    """A SecretKey shorter than PyJWT's recommended 32 bytes still signs, with no warning."""
    header = JwtAuth(ACCESS, "short-sk").header()  # filterwarnings=error would raise here
    claims = jwt.decode(_token(header), options={"verify_signature": False})
    assert claims["iss"] == ACCESS


def test_a_key_that_is_not_a_str_is_a_type_error_naming_it() -> None:
    """A key of another type (``api_key=...`` copied from a docs placeholder) is a TypeError
    naming the argument, not a failure deep in the secret masking."""
    import kling_async as ka

    with pytest.raises(TypeError, match="api_key: expected a str, got ellipsis"):
        ka.KlingClient(api_key=...)  # type: ignore[arg-type]


def _no_credential_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KLING_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_an_access_key_argument_pairs_with_the_secret_key_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each key is taken from its argument, else from its variable: access_key=... with
    KLING_SECRET_KEY set signs JWTs with the two."""
    import kling_async as ka

    _no_credential_variables(monkeypatch)
    monkeypatch.setenv("KLING_SECRET_KEY", SECRET)
    client = ka.KlingClient(access_key=ACCESS)
    claims = jwt.decode(
        _token(client._auth.header()), SECRET, algorithms=["HS256"], options={"verify_nbf": False}
    )
    assert claims["iss"] == ACCESS


def test_half_a_pair_is_named_as_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half an AccessKey/SecretKey pair is a ValueError naming the half given and the half
    missing, as arguments or as variables, never a bare "no credentials"."""
    import kling_async as ka

    _no_credential_variables(monkeypatch)
    with pytest.raises(ValueError, match=r"^access_key is given but secret_key is not"):
        ka.KlingClient(access_key=ACCESS)
    monkeypatch.setenv("KLING_SECRET_KEY", SECRET)
    with pytest.raises(ValueError, match=r"^KLING_SECRET_KEY is set but KLING_ACCESS_KEY is not"):
        ka.KlingClient()

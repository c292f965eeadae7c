"""A client's connection settings, checked once: the wire API (its traits), the credentials, the
base URL and the request rate, each given or read from the environment.

:func:`resolve_settings` is the one check, run by ``KlingClient(...)`` and by the command line
before it sends anything (the command line names the settings as its flags and variables: a
:class:`Wording`). Credentials: https://kling.ai/document-api/api/get-started/authentication
[auth] (an API key, or AccessKey/SecretKey on the legacy standard only).

Sources:
[auth] https://kling.ai/document-api/api/get-started/authentication
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import attrs

from .._providers import ProviderTraits, traits_for
from ._auth import ApiKeyAuth, Auth, JwtAuth

__all__ = ["LIBRARY", "Settings", "Wording", "resolve_settings"]

ACCESS_KEY_ENV = "KLING_ACCESS_KEY"
SECRET_KEY_ENV = "KLING_SECRET_KEY"


@attrs.frozen(kw_only=True)
class Wording:
    """How the messages name the settings to whoever gave them.

    Attributes:
        names: A setting's keyword (``"base_url"``, ``"api_standard"``) → the name the user
            gave it under (``"--base-url"``); a keyword not in it is named as it is.
        arguments: Whether credentials can be passed as arguments (``api_key=...``): the
            message for missing credentials then says so.
        offline: How to run without credentials (``"--sandbox"``), or None.
    """

    names: Mapping[str, str] = attrs.field(factory=dict)
    arguments: bool = True
    offline: str | None = None

    def name(self, setting: str) -> str:
        """``setting`` as the user knows it."""
        return self.names.get(setting, setting)


LIBRARY = Wording()  # the keyword arguments of KlingClient


@attrs.frozen(kw_only=True)
class Settings:
    """Settings that passed :func:`resolve_settings`.

    Attributes:
        traits: What the wire API is and supports.
        auth: The credentials, ready to sign requests.
        base_url: The API root, without a trailing ``/``.
        requests_per_minute: The client's request rate, or None (no limit).
    """

    traits: ProviderTraits
    auth: Auth
    base_url: str
    requests_per_minute: float | None


def resolve_settings(
    *,
    provider: str = "kling",
    api_standard: Literal["legacy", "new"] = "legacy",
    submit_path: Literal["async", "plain"] = "async",
    api_key: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    base_url: str | None = None,
    requests_per_minute: float | None = None,
    callbacks: bool = False,
    wording: Wording = LIBRARY,
) -> Settings:
    """Check a client's settings, filling what is not given from the environment
    (``KLING_API_KEY`` or ``MODELLIX_API_KEY``, ``KLING_ACCESS_KEY`` + ``KLING_SECRET_KEY``,
    ``KLING_BASE_URL`` or ``MODELLIX_BASE_URL``) and the wire API's defaults. Sends nothing.

    Raises:
        ValueError: an unknown provider, ``api_standard`` or ``submit_path``; callbacks on a
            wire API without them; no credentials, half an AccessKey/SecretKey pair, or an
            AccessKey/SecretKey where only an API key is taken; a base URL that is not
            http(s); a request rate ≤ 0. The message names the setting (as ``wording`` says:
            the argument, or the environment variable the value came from) and the rule.
        TypeError: a key that is not a ``str``.
    """
    try:
        traits = traits_for(provider, submit_path=submit_path, api_standard=api_standard)
    except ValueError as exc:
        if wording.name("api_standard") == "api_standard":
            raise
        raise ValueError(f"{wording.name('api_standard')} {api_standard}: {exc}") from None
    if callbacks and not traits.supports_callbacks:
        raise ValueError(f"callbacks: {traits.name} has no callback_url field")
    where = "Kling's new-standard API" if api_standard == "new" else traits.name
    auth = _credentials(traits, api_key, access_key, secret_key, where, wording, api_standard)
    url = base_url or os.environ.get(traits.base_url_env) or traits.default_base_url
    if not url.startswith(("http://", "https://")):
        source = wording.name("base_url") if base_url else traits.base_url_env
        raise ValueError(f"{source} {url!r}: must be an http(s) URL, e.g. https://host/kling")
    if requests_per_minute is None:
        requests_per_minute = traits.default_requests_per_minute
    if requests_per_minute is not None and requests_per_minute <= 0:
        name = wording.name("requests_per_minute")
        raise ValueError(f"{name}: {requests_per_minute}, must be > 0")
    return Settings(
        traits=traits, auth=auth, base_url=url.rstrip("/"), requests_per_minute=requests_per_minute
    )


def _credentials(
    traits: ProviderTraits,
    api_key: str | None,
    access_key: str | None,
    secret_key: str | None,
    where: str,
    wording: Wording,
    api_standard: str,
) -> ApiKeyAuth | JwtAuth:
    """The auth for the given keys, else the environment's: an API key first, else
    AccessKey/SecretKey where the wire API takes a JWT [auth]."""
    env = os.environ
    jwt = traits.supports_jwt
    if not jwt and (access_key or secret_key):
        raise ValueError(f"access_key/secret_key: {where} takes an api_key only")
    for name, value in (
        ("api_key", api_key),
        ("access_key", access_key),
        ("secret_key", secret_key),
    ):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}: expected a str, got {type(value).__name__}")
    key = api_key or env.get(traits.api_key_env) or None
    if key:
        return ApiKeyAuth(key)
    if jwt:  # each key given, else from its variable
        access = access_key or env.get(ACCESS_KEY_ENV) or None
        secret = secret_key or env.get(SECRET_KEY_ENV) or None
        if access and secret:
            return JwtAuth(access, secret)
        if access or secret:  # half a pair: named as the half that is there was given
            given = bool(access_key or secret_key)
            names = ("access_key", "secret_key") if given else (ACCESS_KEY_ENV, SECRET_KEY_ENV)
            have, lack = names if access else names[::-1]
            verb, alternative = ("given", "api_key") if given else ("set", traits.api_key_env)
            raise ValueError(
                f"{have} is {verb} but {lack} is not: {'pass' if given else 'set'} both "
                f"(or {alternative})"
            )
    elif api_standard == "new" and (env.get(ACCESS_KEY_ENV) or env.get(SECRET_KEY_ENV)):
        raise ValueError(  # AccessKey/SecretKey sign the legacy standard's JWTs only [auth]
            f"{where} takes an API key ({traits.api_key_env}); AccessKey/SecretKey are for "
            "the legacy standard"
        )
    ways = [f"set {traits.api_key_env}"]
    if jwt:
        ways.append(f"{ACCESS_KEY_ENV} and {SECRET_KEY_ENV}")
    if wording.arguments:
        ways.append("pass api_key=..." + (" (or access_key=... and secret_key=...)" if jwt else ""))
    if wording.offline:
        ways.append(f"try it offline with {wording.offline}")
    raise ValueError(f"no credentials: {', or '.join(ways)}")

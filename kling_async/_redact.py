"""Secrets kept out of messages: ``Bearer`` tokens, JWT-shaped strings and the credentials a
client was given, masked wherever the SDK builds text from what a server said.

A server may echo the ``Authorization`` header in its error message (``bad auth header: Bearer
sk-…``); every :class:`~kling_async.KlingError` passes its message through :func:`redact` when
it is built, so the key never reaches ``str(exc)``, a log record or the console.
"""

from __future__ import annotations

import re

__all__ = ["MIN_SECRET_LENGTH", "add_secret", "redact"]

MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;)\]}<]+")  # not one already masked
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
# Longest first, so a secret containing another is masked whole. A tuple replaced whole on
# each change, so a thread reading it never sees it change under its loop.
_secrets: tuple[str, ...] = ()


def add_secret(value: str | None) -> None:
    """Mask ``value`` (an API key, an AccessKey's SecretKey, …) in every later message of
    this process. Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored."""
    global _secrets
    if value and len(value) >= MIN_SECRET_LENGTH and value not in _secrets:
        _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with ``Bearer <token>`` → ``Bearer <redacted>``, JWT-shaped strings →
    ``<jwt>`` and each registered secret → ``<secret>``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "<secret>")
    if "eyJ" in text:
        text = _JWT.sub("<jwt>", text)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1 <redacted>", text)
    return text

"""Text from outside made safe to show: secrets masked, control characters escaped.

Secrets: ``Bearer`` tokens, JWT-shaped strings and the credentials a client was given are
masked wherever the SDK builds text from what a server said. A server may echo the
``Authorization`` header in its error message (``bad auth header: Bearer sk-…``); every
:class:`~kling_async.KlingError` passes its message through :func:`redact` when it is built, so
the key never reaches ``str(exc)``, a log record or the console.

Control characters: a server's text (a ``task_status_msg``, an error message, a task id) may hold
ANSI escapes, CR/LF or bidi overrides that would forge or hide a line of a log. Every record of
the ``kling_async`` loggers passes through :class:`SafeRecords` (installed on them when this
module is imported), which masks secrets and shows those characters escaped (``\\x1b``,
``\\n``, ``\\u202e``), whatever handler the application attaches.
"""

from __future__ import annotations

import logging
import re

__all__ = ["LOGGERS", "MIN_SECRET_LENGTH", "SafeRecords", "add_secret", "escape_controls", "redact"]

LOGGERS = (
    "kling_async.client",
    "kling_async.http",
    "kling_async.quota",
    "kling_async.callbacks",
    "kling_async.queue",
)

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


# C0 controls, DEL, C1 controls; then the invisible characters that reorder or hide text:
# the Arabic letter mark, zero-width characters and bidi marks, line/paragraph separators,
# bidi embeddings, overrides and isolates, invisible operators, the byte-order mark.
_ESCAPED = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_INVISIBLE = [0x061C, *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x202F)]
_INVISIBLE += [*range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]
_TABLE = {c: f"\\x{c:02x}" for c in _ESCAPED} | {c: f"\\u{c:04x}" for c in _INVISIBLE}
_TABLE |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters and invisible formatting characters (bidi
    overrides, zero-width characters, line separators) written as escapes (``\\x1b``, ``\\n``,
    ``\\u202e``); everything else as it is."""
    if text.isprintable():  # every character of _TABLE is non-printable
        return text
    return text.translate(_TABLE)


class SafeRecords(logging.Filter):
    """A logging filter: each record's message with secrets masked (:func:`redact`) and
    control characters escaped (:func:`escape_controls`), so a server's text cannot forge or
    hide a log line nor leak a key. The record's message is replaced only when it changes."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = escape_controls(redact(text))
        if clean != text:
            record.msg, record.args = clean, None
        return True


_records = SafeRecords()
for _name in LOGGERS:
    logging.getLogger(_name).addFilter(_records)

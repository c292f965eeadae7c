"""Text from outside (campaign lines, server messages, URLs, task ids, paths) as the command
line shows it: never read as console markup, control characters shown escaped, secrets masked.

A server's ``task_status_msg`` holding ``[/x]`` would otherwise be a rich markup error, and one
holding ``\\r`` or an ANSI escape could overwrite or forge a line of our output. Everything the
command line prints or logs goes through :func:`safe` (or :func:`say`, which also keeps it out
of rich's markup), and its log handlers through :class:`SafeRecords`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from ._redact import add_secret, redact

__all__ = ["MAX_SHOWN", "SafeRecords", "safe", "say"]

MAX_SHOWN = 2000  # characters of one outside text shown; the rest is summarised

# C0 controls, DEL, C1 controls; then the invisible characters that reorder or hide text:
# bidi marks, embeddings, overrides and isolates, zero-width characters, line/paragraph
# separators, the byte-order mark.
_ESCAPED = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_INVISIBLE = [0x061C, *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x202F)]
_INVISIBLE += [*range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]
_TABLE = {c: f"\\x{c:02x}" for c in _ESCAPED} | {c: f"\\u{c:04x}" for c in _INVISIBLE}
_TABLE |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_terminal: weakref.WeakKeyDictionary[Console, bool] = weakref.WeakKeyDictionary()


def safe(text: object, limit: int = MAX_SHOWN) -> str:
    """``str(text)`` on one line: control and invisible formatting characters escaped
    (``\\x1b``, ``\\n``, ``\\u202e``), secrets masked, at most ``limit`` characters of it
    shown (then ``… (N more characters)``)."""
    shown = redact(str(text))
    more = len(shown) - limit
    if more > 0:
        shown = shown[:limit]
    if not shown.isprintable():  # every character of _TABLE is non-printable
        shown = shown.translate(_TABLE)
    return f"{shown}… ({more} more characters)" if more > 0 else shown


def say(console: Console, *parts: str | tuple[str, str]) -> None:
    """Print one line on ``console`` built from ``parts``: each a text, or ``(text, style)``
    (a rich style such as ``"red"``). Every text goes through :func:`safe` and is never read
    as markup. Off a terminal the line is written as plain text, without rich's rendering
    (a run of 100,000 invalid lines prints 100,000 of them)."""
    terminal = _terminal.get(console)
    if terminal is None:  # rich looks at the environment each time it is asked
        terminal = _terminal[console] = console.is_terminal
    if terminal:
        pieces = [(safe(p), "") if isinstance(p, str) else (safe(p[0]), p[1]) for p in parts]
        console.print(Text.assemble(*pieces), soft_wrap=True)
    else:
        texts = [safe(p if isinstance(p, str) else p[0]) for p in parts]
        console.file.write("".join(texts) + "\n")


class SafeRecords(logging.Filter):
    """A log handler's filter: each record's message as :func:`safe` makes it (escaped,
    secrets and the given ``secrets`` masked), so a server's text cannot forge a log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        for secret in secrets:
            add_secret(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = safe(text, limit=len(text))
        if clean != text:
            record.msg, record.args = clean, None
        return True

"""Text from outside (campaign lines, server messages, URLs, task ids, paths) as the command
line shows it: never read as console markup, control characters shown escaped, secrets masked.

A server's ``task_status_msg`` holding ``[/x]`` would otherwise be a rich markup error, and one
holding ``\\r`` or an ANSI escape could overwrite or forge a line of our output. Everything the
command line prints or logs goes through :func:`safe` (or :func:`say`, which also keeps it out
of rich's markup), and its log handlers through :class:`SafeRecords`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from .. import _redact
from .._redact import add_secret, escape_controls, redact

__all__ = ["MAX_SHOWN", "SafeRecords", "safe", "say"]

MAX_SHOWN = 2000  # characters of one outside text shown; the rest is summarised

_terminal: weakref.WeakKeyDictionary[Console, bool] = weakref.WeakKeyDictionary()


def safe(text: object, limit: int = MAX_SHOWN) -> str:
    """``str(text)`` on one line: control and invisible formatting characters escaped
    (``\\x1b``, ``\\n``, ``\\u202e``), secrets masked, at most ``limit`` characters of it
    shown (then ``… (N more characters)``)."""
    shown = redact(str(text))
    more = len(shown) - limit
    if more > 0:
        shown = shown[:limit]
    shown = escape_controls(shown)
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


class SafeRecords(_redact.SafeRecords):
    """A log handler's filter: each record's message escaped and with secrets masked, the
    given ``secrets`` (e.g. the credentials in the environment) among them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        for secret in secrets:
            add_secret(secret)

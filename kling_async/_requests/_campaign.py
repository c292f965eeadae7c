"""Campaign files: one JSON request per line (JSON Lines).

Each line is a create body as the vendor's docs write it, plus ``"kind": "image"`` or
``"kind": "video"``: Kling's native omni-image / omni-video bodies (``image_list: [{"image":
…}]``, video ``image_list: [{"image_url": …, "type": "first_frame"}]``, ``watermark_info``,
``duration: "5"``, …), or with ``"provider": "modellix"`` Modellix's flat bodies (``images``,
``element_ids``, ``videos``); the SDK's own shapes are read too. Local paths resolve against the
campaign file's folder and must exist. Blank lines and lines starting with ``#`` are skipped;
a UTF-8 byte-order mark before the first line is accepted.

Each line is checked against the rules of the wire API the run sends to (``--provider``,
``--api-standard``: the codec's ``check``), whatever dialect its body is written in.
A malformed or invalid line becomes a :class:`CampaignLineError` naming its line number and the
reason; the other lines are unaffected. That holds for any failure to read one line: a line
longer than :data:`MAX_LINE_BYTES` (4 MiB), bytes that are not UTF-8, JSON nested deeper than
Python's recursion limit, a number out of range (``1e999999``, an integer of more than
:data:`MAX_INTEGER_DIGITS` digits), or an ``external_task_id`` an earlier line already uses.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from .._models import OmniImageRequest, OmniVideoRequest, Request
from ._wire_bodies import Dialect, image_kwargs, video_kwargs

__all__ = [
    "MAX_INTEGER_DIGITS",
    "MAX_LINE_BYTES",
    "CampaignLine",
    "CampaignLineError",
    "content_lines",
    "is_text_file",
    "read_campaign",
]

MAX_LINE_BYTES = 4 * 1024 * 1024  # one campaign line, newline excluded; a longer line is invalid
MAX_INTEGER_DIGITS = 100  # a longer integer in a line is out of range
_OTHER_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_SKIP_CHUNK = 64 * 1024  # bytes read at a time while skipping the rest of an overlong line


@attrs.frozen(kw_only=True)
class CampaignLine:
    """A valid campaign line: its 1-based line number, its text and its request."""

    line: int
    text: str
    request: Request


@attrs.frozen(kw_only=True)
class CampaignLineError:
    """An invalid campaign line: its 1-based line number, its text and the reason."""

    line: int
    text: str
    reason: str


def read_campaign(
    path: Path,
    provider: Dialect = "kling",
    check: Callable[[Request], None] | None = None,
) -> Iterator[CampaignLine | CampaignLineError]:
    """Yield each non-blank line of the campaign file at ``path`` as a request or an error.

    Lazy: one line is read and parsed at a time. ``provider`` is the dialect of lines that do
    not name one (``"provider"`` on the line). ``check`` (the run's wire API's rules, e.g. a
    codec's ``check``; raising ``ValueError``) turns a request it refuses into a line error;
    without it only the requests' shape is checked.
    Whatever makes one line unreadable (longer than
    :data:`MAX_LINE_BYTES`, not UTF-8, nested too deep, a number out of range, a broken request
    rule) makes that line a :class:`CampaignLineError`; the next line is read as usual. An
    ``external_task_id`` already used on an earlier valid line is an error naming that line
    (only a 16-byte digest of each id is kept).

    Raises:
        OSError: the file cannot be opened.
    """
    base = path.resolve().parent
    seen: dict[bytes, int] = {}  # digest of an external_task_id → the line that used it
    for number, text in content_lines(path):
        if isinstance(text, CampaignLineError):
            yield text
            continue
        try:
            request = parse_line(text, base, provider)
            if check is not None:
                check(request)
        except RecursionError:
            yield CampaignLineError(line=number, text=text, reason="nested too deeply")
            continue
        except (ValueError, TypeError, OverflowError) as exc:
            yield CampaignLineError(line=number, text=text, reason=_clip(str(exc)))
            continue
        ext = request.external_task_id
        if ext is not None:
            digest = hashlib.blake2b(ext.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            first = seen.setdefault(digest, number)
            if first != number:
                reason = f"external_task_id {_clip(ext, 200)!r} already used on line {first}"
                yield CampaignLineError(line=number, text=text, reason=reason)
                continue
        yield CampaignLine(line=number, text=text, request=request)


def content_lines(path: Path) -> Iterator[tuple[int, str | CampaignLineError]]:
    """``(1-based line number, stripped text)`` of each line that is not blank or a ``#``
    comment; a line that cannot be read as text (longer than :data:`MAX_LINE_BYTES`, or not
    UTF-8) comes as a :class:`CampaignLineError` instead. A UTF-8 byte-order mark before the
    first line is skipped. Lazy; reads at most :data:`MAX_LINE_BYTES` + 1 bytes at a time.

    Raises:
        OSError: the file cannot be opened.
    """
    with path.open("rb") as fh:
        number = 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            number += 1
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = fh.readline(_SKIP_CHUNK)
                reason = f"longer than {MAX_LINE_BYTES} bytes (give large media as files or URLs)"
                yield number, CampaignLineError(line=number, text="", reason=reason)
                continue
            raw = raw.strip()
            if not raw or raw.startswith(b"#"):
                continue
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                text = raw.decode("utf-8", "replace")
                yield number, CampaignLineError(line=number, text=text, reason=reason)


def is_text_file(path: Path) -> bool:
    """Whether the file may be UTF-8 text: it does not start with a UTF-16 or UTF-32
    byte-order mark. (Bad bytes elsewhere make only their own line invalid.)

    Raises:
        OSError: the file cannot be read.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
    return not head.startswith(_OTHER_BOMS)


def _clip(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters (a reason may quote a huge value)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def parse_line(text: str, base: Path, provider: Dialect = "kling") -> Request:
    """Parse one campaign line into a request; relative paths resolve against ``base``.

    The line is a vendor's create body plus ``"kind"`` (see :meth:`OmniImageRequest.from_wire`);
    an optional ``"provider"`` (``"kling"`` or ``"modellix"``) names the dialect the body is
    written in, else ``provider``. Only the request's shape is checked here; the rules of the
    wire API it goes to are :func:`read_campaign`'s.

    Raises:
        ValueError: bad JSON, unknown ``kind``, ``provider`` or field, a missing local file, or
            a broken request rule.
        TypeError: a field of the wrong type.
    """
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:  # a number out of range (raised by the hooks below)
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.pop("kind", None)
    dialect = obj.pop("provider", provider)
    if dialect not in ("kling", "modellix"):
        raise ValueError(f"provider: {dialect!r}, must be 'kling' or 'modellix'")
    if kind == "image":
        return OmniImageRequest(**image_kwargs(obj, dialect=dialect, base=base))
    if kind == "video":
        return OmniVideoRequest(**video_kwargs(obj, dialect=dialect, base=base))
    raise ValueError(f"kind: {kind!r}, must be 'image' or 'video'")


def _integer(text: str) -> int:
    if len(text) > MAX_INTEGER_DIGITS:
        raise ValueError(f"number out of range: an integer of {len(text)} digits")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {_clip(text, 40)}")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


# One decoder for every line: json.loads with hooks would build a new one per call.
_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_finite, parse_constant=_no_constant)

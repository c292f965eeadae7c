"""Campaign files: one JSON request per line (JSON Lines).

Each line is a create body as the vendor's docs write it, plus ``"kind": "image"`` or
``"kind": "video"``: Kling's native omni-image / omni-video bodies (``image_list: [{"image":
…}]``, video ``image_list: [{"image_url": …, "type": "first_frame"}]``, ``watermark_info``,
``duration: "5"``, …), or with ``"provider": "modellix"`` Modellix's flat bodies (``images``,
``element_ids``, ``videos``); the SDK's own shapes are read too. Local paths resolve against the
campaign file's folder and must exist. Blank lines and lines starting with ``#`` are skipped.

Each line is checked against the rules of the wire API the run sends to (``--provider``,
``--api-standard``: the codec's ``check``), whatever dialect its body is written in. A
malformed or invalid line becomes a :class:`CampaignLineError` naming its line number and the
reason; the other lines are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from ._models import OmniImageRequest, OmniVideoRequest, Request
from ._wire_bodies import Dialect, image_kwargs, video_kwargs

__all__ = ["CampaignLine", "CampaignLineError", "content_lines", "read_campaign"]


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

    Raises:
        OSError: the file cannot be opened.
    """
    base = path.resolve().parent
    for number, text in content_lines(path):
        try:
            request = parse_line(text, base, provider)
            if check is not None:
                check(request)
            yield CampaignLine(line=number, text=text, request=request)
        except (ValueError, TypeError) as exc:
            yield CampaignLineError(line=number, text=text, reason=str(exc))


def content_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(1-based line number, stripped text)`` of each line that is not blank or a ``#``
    comment. Lazy.

    Raises:
        OSError: the file cannot be opened.
    """
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.strip()
            if text and not text.startswith("#"):
                yield number, text


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
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
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

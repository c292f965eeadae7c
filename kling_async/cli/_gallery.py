"""``kling-async gallery OUT``: one offline HTML page (``OUT/index.html``) to look at a run.

Every manifest line becomes a card: its images as thumbnails (made with Pillow from the files on
disk, kept in ``OUT/thumbs/``) linking to the full files, series images in order, videos with
controls (the browser shows their first frame as the poster), and the line's prompt, model,
status, units, error and when its result URLs expire. Buttons filter the cards by status and by
kind. The page loads nothing from the network, so it works opened from disk (``file://``).

Every text on the page comes from a campaign file or a server (prompts, error messages, ids), so
the page is rendered by Jinja2 with autoescaping on; file links are relative, percent-encoded
names of files that exist in ``OUT``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import jinja2
from PIL import Image, UnidentifiedImageError

from ._files import GALLERY_NAME, read_manifest

__all__ = ["write_gallery"]

THUMBS_DIR = "thumbs"
THUMB_SIZE = (480, 480)  # the longest side a thumbnail may have, in pixels
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
_VIDEO_SUFFIXES = {".mp4", ".mov", ".webm"}
# Output names the downloader makes: {stem}-{image|series|video}-{index}.{ext}
_ROLE = re.compile(r"-(image|series|video)-(\d+)\.[A-Za-z0-9]+$")


@attrs.define
class _Media:
    name: str  # the file's name in OUT
    href: str  # relative, percent-encoded
    thumb: str | None = None  # relative href of its thumbnail (images)
    size: tuple[int, int] | None = None  # the image's pixels


@attrs.define(kw_only=True)
class _Card:
    line: int | None
    status: str
    kind: str
    model: str | None
    prompt: str | None
    units: str | None
    error: str | None
    task_id: str | None
    key: str | None
    expires: str | None
    images: list[_Media] = attrs.field(factory=list)
    series: list[_Media] = attrs.field(factory=list)
    videos: list[_Media] = attrs.field(factory=list)
    others: list[_Media] = attrs.field(factory=list)


def write_gallery(out: Path) -> Path:
    """Write ``out/index.html`` (and thumbnails in ``out/thumbs/``) from ``out/manifest.jsonl``
    and the files beside it; return the page's path.

    Raises:
        FileNotFoundError: ``out`` has no manifest (no run wrote to it).
        OSError: the folder cannot be read or written.
    """
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{out}: no manifest.jsonl (is it the --out folder of a run?)")
    present = {entry.name for entry in os.scandir(out) if entry.is_file()}
    (out / THUMBS_DIR).mkdir(exist_ok=True)
    cards = [_card(row, out, present) for row in read_manifest(manifest)]
    statuses = Counter(card.status for card in cards)
    kinds = Counter(card.kind for card in cards)
    units = sum((_decimal(card.units) for card in cards), Decimal(0))
    html = (
        _environment()
        .get_template("gallery.html.j2")
        .render(
            title=f"kling-async: {out.resolve().name}",
            cards=cards,
            statuses=sorted(statuses.items()),
            kinds=sorted(kinds.items()),
            units=units,
            files=sum(len(c.images) + len(c.series) + len(c.videos) for c in cards),
        )
    )
    page = out / GALLERY_NAME
    tmp = out / f".{GALLERY_NAME}.{os.getpid()}.part"  # two galleries at once never share one
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(page)
    return page


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kling_async.cli", "templates"),
        autoescape=True,  # every text on the page is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal:
    """A row's units for the page's total: 0 when absent or not a finite number (a hand-edited
    ``"sNaN"`` would otherwise raise on addition)."""
    try:
        units = Decimal(value) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return units if units.is_finite() else Decimal(0)


def _card(row: dict[str, Any], out: Path, present: set[str]) -> _Card:
    line = row.get("line")
    kind = _text(row.get("kind"))
    card = _Card(
        line=line if isinstance(line, int) else None,
        status=_text(row.get("status")) or "unknown",
        kind=kind or "unknown",
        model=_text(row.get("model")),
        prompt=_text(row.get("prompt")),
        units=_text(row.get("units")),
        error=_text(row.get("error")),
        task_id=_text(row.get("task_id")),
        key=_text(row.get("external_task_id")),
        expires=_text(row.get("urls_expire_at")),
    )
    files = row.get("files")
    named: list[tuple[str, int, str]] = []
    for name in files if isinstance(files, list) else []:
        # Only plain names of files that are in OUT: a manifest never points elsewhere.
        if not isinstance(name, str) or name not in present or name.startswith("."):
            continue
        match = _ROLE.search(name)
        role, index = (match[1], int(match[2])) if match else ("other", 0)
        named.append((role, index, name))
    for role, _, name in sorted(named):
        media = _Media(name=name, href=quote(name))
        suffix = Path(name).suffix.lower()
        if suffix in _VIDEO_SUFFIXES:
            card.videos.append(media)
            if card.kind == "unknown":
                card.kind = "video"
        elif suffix in _IMAGE_SUFFIXES:
            media.thumb, media.size = _thumbnail(out, name)
            (card.series if role == "series" else card.images).append(media)
            if card.kind == "unknown":
                card.kind = "image"
        else:
            card.others.append(media)
    return card


def _thumbnail(out: Path, name: str) -> tuple[str | None, tuple[int, int] | None]:
    """A JPEG of at most :data:`THUMB_SIZE` in ``out/thumbs`` for image ``name`` (made again
    only when the image is newer), with the image's own size; (None, None) if Pillow cannot
    read it (the card then links to the file)."""
    source = out / name
    target = out / THUMBS_DIR / f"{Path(name).stem}.jpg"
    try:
        with Image.open(source) as image:
            size = image.size
            if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
                image.draft("RGB", THUMB_SIZE)  # JPEG: decode at a reduced scale
                thumb = image.convert("RGB")
                thumb.thumbnail(THUMB_SIZE)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
                thumb.save(tmp, "JPEG", quality=82)
                tmp.replace(target)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None, None
    return f"{THUMBS_DIR}/{quote(target.name)}", size

"""``kling-async estimate``: what a campaign file is expected to cost in units, per line class
and in total, with what each estimate rests on; nothing is sent.

The estimates are the ones a unit budget (``run --budget``) starts from: Kling's published
prices (https://kling.ai/document-api/pricing/base/image, …/video), an ``auto`` series at its
largest size (9 images). A class Kling publishes no price for is listed as unknown; under a
budget its first task runs while no other of unknown cost is in flight, to learn it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Literal

import attrs

from .._engine._budget import UnitEstimates, price_class, request_size
from .._models import OmniImageRequest, Request
from .._requests._campaign import CampaignLineError, read_campaign
from ._text import safe

__all__ = ["estimate_campaign"]


@attrs.define
class _Group:
    """The lines of one class and size."""

    label: str
    lines: list[int] = attrs.field(factory=list)
    each: Decimal | None = None  # units per line, None when unknown
    basis: str = ""


def estimate_campaign(
    path: Path,
    write: Callable[[str], None],
    provider: Literal["kling", "modellix"] = "kling",
    check: Callable[[Request], None] | None = None,
) -> int:
    """Write the estimate of the campaign at ``path`` line by line through ``write``; return
    the exit status (0, or 1 when a line is invalid: its reason is listed). ``provider`` is
    the lines' default dialect; ``check`` (the run's wire API's rules, ``request_check``)
    refuses lines as a run would. Invalid lines' reasons are printed with control characters
    escaped.

    Raises:
        OSError: the file cannot be read.
    """
    estimates = UnitEstimates()
    groups: dict[tuple[object, ...], _Group] = {}
    invalid: list[CampaignLineError] = []
    for item in read_campaign(path, provider, check):
        if isinstance(item, CampaignLineError):
            invalid.append(item)
            continue
        request = item.request
        size, word = request_size(request)
        auto = isinstance(request, OmniImageRequest) and request.is_auto_series
        key = (*price_class(request), size, auto)
        group = groups.get(key)
        if group is None:
            amount = (
                "auto series (at most 9 images)"
                if auto
                else f"{size} {word}{'s' if size != 1 else ''}"
            )
            label = safe(f"{', '.join(price_class(request))}, {amount}")
            group = groups[key] = _Group(label=label)
            estimate = estimates.estimate(request)
            if estimate is not None:
                group.each, group.basis = estimate.units, estimate.basis
            else:
                group.basis = "Kling publishes no price for it: learnt from its first task"
        group.lines.append(item.line)

    total = Decimal(0)
    unknown = 0
    for group in groups.values():
        count = len(group.lines)
        if group.each is None:
            unknown += count
            write(f"{count:>5} × {group.label}: unknown — {group.basis}")
            continue
        subtotal = group.each * count
        total += subtotal
        write(f"{count:>5} × {group.label}: {group.each} units each, {subtotal} in all")
        write(f"        based on: {group.basis}")
    lines = sum(len(g.lines) for g in groups.values())
    summary = f"total: {total} units for {lines - unknown} of {lines} valid lines"
    if unknown:
        summary += f"; {unknown} line(s) of unknown cost not counted"
    write(summary)
    for error in invalid:
        write(f"line {error.line}: invalid: {safe(error.reason)}")
    return 1 if invalid else 0

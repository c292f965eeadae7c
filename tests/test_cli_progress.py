"""The progress line of ``kling-async run`` fits an 80-column terminal: elapsed time,
done/total, units and the quota in use are all there in full, on one line, with worst-case
figures (rendered by a fixed-width rich Console recording)."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from rich.console import Console

import kling_async as ka
from kling_async.cli._progress import progress_fields, run_progress
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("width", [80, 100, 120])
async def test_progress_line_keeps_every_column_at_80(sandbox: Sandbox, width: int) -> None:
    """With 99,999 of 100,000 lines done, 123,456.5 units and 45 of 45 slots held, one line
    shows the elapsed time, 99999/100000, the units and the quota uncut, and the outcome
    counts in full from 100 columns on (cut with "…" at 80)."""
    async with ka.KlingClient(api_key=API_KEY, base_url=sandbox.base_url) as client:
        await client.wait(await client.submit(ka.OmniImageRequest(prompt="a chair", n=9)))
        stats = client.stats()
    (name, pool), *_ = stats.pools.items()
    stats = attrs.evolve(
        stats,
        units_spent=Decimal("123456.5"),
        pools={name: attrs.evolve(pool, held=45, capacity=45)},
    )
    console = Console(width=width, record=True, force_terminal=True, color_system=None)
    progress = run_progress(console)
    bar = progress.add_task("", total=100_000, **progress_fields(None))
    fields = progress_fields(stats, succeeded=99_990, failed=5, invalid=4)
    progress.update(bar, completed=99_999, **fields)
    console.print(progress.get_renderable())
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) == 1 and len(lines[0]) <= width, lines
    line = lines[0]
    for part in ("0:00:00 ", " 99999/100000 · 123456.5 units · quota 45/45 · ok"):
        assert part in line, (part, line)
    assert ("ok 99990 · failed 5 · invalid 4" in line) == (width >= 100), line

"""A push's call shape and its validation in a pool of processes, on a real redis-server: the
stream holds every line whole and in order, and the pool reports exactly what one process does."""

from __future__ import annotations

import json
import uuid

import pytest
import redis.asyncio as redis_asyncio

import kling_async as ka

from .redis_server import RedisServer


def _line(i: int) -> str:
    body = {"kind": "image", "model_name": "kling-image-o1", "prompt": f"line {i}"}
    return json.dumps(body) + "\n"


async def _stream(url: str, name: str) -> list[tuple[str, str, str]]:
    """(entry id, line number, text) of every entry on queue ``name``'s stream."""
    r = redis_asyncio.Redis.from_url(url, decode_responses=True)
    try:
        entries = await r.xrange(f"kling_async:queue:{{{name}}}:stream")
    finally:
        await r.aclose()
    return [(entry_id, f["line"], f["text"]) for entry_id, f in entries]


@pytest.mark.anyio
async def test_a_line_holding_a_newline_is_queued_whole(redis_server: RedisServer) -> None:
    """A line given with a newline inside (JSON whitespace) is queued as one entry, unsplit."""
    name = f"q{uuid.uuid4().hex[:8]}"
    folded = '{"kind": "image",\n "model_name": "kling-image-o1", "prompt": "folded"}\n'
    async with ka.RedisCampaign(redis_server.url, name) as queue:
        report = await queue.push([_line(1), folded, _line(3)])
    assert (report.queued, report.invalid) == (3, ())
    assert await _stream(redis_server.url, name) == [
        ("1-1", "1", _line(1).strip()),
        ("2-1", "2", folded.strip()),
        ("3-1", "3", _line(3).strip()),
    ]


@pytest.mark.anyio
async def test_a_push_validated_in_processes_reports_what_one_process_does(
    redis_server: RedisServer,
) -> None:
    """processes=2 (a pool after the first 2,000 lines) queues the same entries and reports the
    same invalid lines, in order, as a push checked in this process."""
    bad = {7: '{"kind": "image"}', 2500: "{oops", 4999: '{"kind": "image", "n": 0}'}
    lines = [bad[i] + "\n" if i in bad else _line(i) for i in range(1, 6001)]
    reports, streams = [], []
    for processes in (1, 2):
        name = f"q{uuid.uuid4().hex[:8]}"
        async with ka.RedisCampaign(redis_server.url, name) as queue:
            reports.append(await queue.push(lines, processes=processes))
            status = await queue.status()
        streams.append(await _stream(redis_server.url, name))
        assert (status.lines, status.queued, status.done) == (6000, 5997, {"invalid": 3})
    assert reports[0] == reports[1]
    assert [line for line, _ in reports[1].invalid] == [7, 2500, 4999]
    assert streams[0] == streams[1] and len(streams[1]) == 5997

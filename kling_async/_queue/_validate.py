"""Validating a push's lines, chunk by chunk and in order: in this process, or in a pool of
processes for a long campaign (``kling-async push`` uses one per core), with a bounded number
of chunks in flight so memory stays flat. Each line gets exactly a worker's check:
:func:`parse_line` against the queue's folder and dialect."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .._requests._campaign import parse_line

__all__ = ["ChunkValidator", "invalid_lines"]

Chunk = list[tuple[int, str]]  # (line number, text)
Invalid = list[tuple[int, str]]  # (line number, reason)


def invalid_lines(chunk: Sequence[tuple[int, str]], base: Path, provider: str) -> Invalid:
    """The lines of ``chunk`` that :func:`parse_line` refuses, as ``(line number, reason)``,
    in order (a module-level function: a pool's processes run it)."""
    out: Invalid = []
    for number, text in chunk:
        try:
            parse_line(text, base, provider)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            out.append((number, str(exc)))
    return out


class ChunkValidator:
    """Chunks of lines in, ``(chunk, its invalid lines)`` out in the order they went in.

    With ``processes`` ≤ 1 every chunk is checked at once in this process. Otherwise the
    first chunk is (a short push starts no process), and the rest go to a pool of
    ``processes`` processes (started with ``spawn``: the calling program's main module must
    be guarded by ``if __name__ == "__main__":``), at most two per process in flight.
    Use as ``async with``: the pool is shut down on leaving.
    """

    def __init__(self, base: Path, provider: str, processes: int = 1) -> None:
        self._base, self._provider, self._processes = base, provider, processes
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[Chunk, Invalid | asyncio.Future[Invalid]]] = deque()
        self._chunks = 0

    async def __aenter__(self) -> ChunkValidator:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        for _, result in self._pending:
            if isinstance(result, asyncio.Future):
                result.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def put(self, chunk: Chunk) -> list[tuple[Chunk, Invalid]]:
        """Hand in a chunk; returns the chunks checked by now that must go next (oldest
        first), waiting for the oldest while too many are in flight."""
        self._chunks += 1
        if self._processes <= 1 or self._chunks == 1:
            self._pending.append((chunk, invalid_lines(chunk, self._base, self._provider)))
        else:
            if self._pool is None:
                import multiprocessing  # ~70 ms, only for a pool of checkers

                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self._processes, mp_context=context)
            future = asyncio.get_running_loop().run_in_executor(
                self._pool, invalid_lines, chunk, self._base, self._provider
            )
            self._pending.append((chunk, future))
        ready = []
        while self._pending and (
            len(self._pending) > 2 * max(self._processes, 1)
            or not isinstance(self._pending[0][1], asyncio.Future)
        ):
            ready.append(await self._pop())
        return ready

    async def drain(self) -> list[tuple[Chunk, Invalid]]:
        """Every chunk still in flight, checked, oldest first."""
        return [await self._pop() for _ in range(len(self._pending))]

    async def _pop(self) -> tuple[Chunk, Invalid]:
        chunk, result = self._pending[0]
        invalid = await result if isinstance(result, asyncio.Future) else result
        self._pending.popleft()
        return chunk, invalid

"""How long each pool's tasks hold their slots: one record per pool, written once when a task
ends (by the quota backend's ``ended``) and read by the quota policy (expected frees, patience,
probing) and by the engine's polling cadence (``mean()``, ``shortest``)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

__all__ = ["DurationEstimate", "Durations", "kept_by"]


@attrs.define
class DurationEstimate:
    """Exponentially weighted mean of how long a pool's tasks hold their slots, in seconds, the
    shortest seen, and ``count``, how many tasks were recorded."""

    _mean: float | None = None
    weight: float = 0.1
    shortest: float | None = None
    count: int = 0

    def observe(self, seconds: float) -> None:
        """Record one task that held its slots ``seconds``."""
        self.count += 1
        self.shortest = seconds if self.shortest is None else min(self.shortest, seconds)
        self._mean = (
            seconds
            if self._mean is None
            else ((1 - self.weight) * self._mean + self.weight * seconds)
        )

    def mean(self) -> float | None:
        """The mean so far, None before any task ended."""
        return self._mean


@attrs.define
class Durations:
    """One :class:`DurationEstimate` per pool name, made on first use (``durations[pool]``);
    ``pool in durations`` says whether one was made."""

    _pools: dict[str, DurationEstimate] = attrs.field(factory=dict)

    def __getitem__(self, pool: str) -> DurationEstimate:
        estimate = self._pools.get(pool)
        if estimate is None:
            estimate = self._pools[pool] = DurationEstimate()
        return estimate

    def __contains__(self, pool: object) -> bool:
        return pool in self._pools

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def items(self) -> Iterator[tuple[str, DurationEstimate]]:
        """``(pool, estimate)`` of every pool with a record."""
        return iter(list(self._pools.items()))

    def observe(self, pool: str, seconds: float) -> None:
        """A task of ``pool`` ended after holding its slots ``seconds``."""
        self[pool].observe(seconds)


def kept_by(backend: object) -> Durations | None:
    """The duration record a quota backend keeps (``backend.durations``, written by its
    ``ended``), or None for a backend that keeps none: its caller then keeps and writes one
    of its own."""
    durations = getattr(backend, "durations", None)
    return durations if isinstance(durations, Durations) else None

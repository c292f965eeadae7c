"""Kling's ``GET /account/costs`` as the sandbox serves it: the account's resource packs, their
``remaining_quantity`` going down by what the sandbox charged.

Route, relative to the sandbox's ``path_prefix`` [account-usage]::

    GET /account/costs?start_time=<ms>&end_time=<ms>[&resource_pack_name=]

The answer is the legacy envelope whose ``data`` is itself ``{code, msg,
resource_pack_subscribe_infos[]}``; each pack has ``resource_pack_name``, ``resource_pack_id``,
``resource_pack_type`` (``decreasing_total`` | ``constant_period``), ``total_quantity``,
``remaining_quantity`` (numbers), ``purchase_time``, ``effective_time``, ``invalid_time`` (ms)
and ``status`` (``toBeOnline`` | ``online`` | ``expired`` | ``runOut``) [account-usage].
``start_time`` and ``end_time`` are required integers [account-usage]; a missing or malformed
one answers 1201 [errors]. Authentication is that of the legacy routes.

Sandbox choices (INFERRED: the page does not say them):
- The window selects the packs whose validity (``effective_time`` to ``invalid_time``)
  overlaps ``start_time`` to ``end_time`` (the page's example uses one pack's effective and
  expiry times as its window).
- Charges: every succeeded Kling task (either standard; Modellix is another account) is
  charged its ``final_unit_deduction`` / ``billing[].amount`` (see ``_prices``) at its end, in
  end order, to the first pack of its kind (image or video) that is in effect then and has
  units left; a charge larger than what is left runs the pack out and the rest goes to the
  next one. Charges no pack can take are dropped (the sandbox models no arrears, 1101).
  ``constant_period`` packs are charged like ``decreasing_total`` ones (no period reset).
- The page documents a delay of up to 12 h on ``remaining_quantity``; the sandbox's
  ``remaining_delay`` (seconds, default 0: immediate) sets how long after a task's end its
  charge shows.
- The page asks callers to keep QPS ≤ 1 but names no error for more; the sandbox answers every
  query and records its arrival time (:attr:`AccountCosts.query_times`) so tests can check a
  client's spacing.

Sources:
[account-usage] https://kling.ai/document-api/api/assets/account-usage
[errors] https://kling.ai/document-api/api/get-started/error-codes
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final, Literal

import attrs
from aiohttp import web

from ._engine import Engine
from ._faults import FaultInjector
from ._kling import ApiError, envelope, envelope_handler
from ._state import Status

PATH: Final = "/account/costs"  # [account-usage]
PACK_TYPES: Final = ("decreasing_total", "constant_period")  # [account-usage]
_DAY: Final = 24 * 3600.0


def _decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"total: need a Decimal, int or numeric str, got {value!r}")
    units = Decimal(value)
    if not units.is_finite() or units < 0:
        raise ValueError(f"total: need a finite number of units >= 0, got {value!r}")
    return units


@attrs.frozen(kw_only=True)
class ResourcePackSpec:
    """One resource pack of the sandbox account (``Sandbox(resource_packs=...)``).

    Args:
        name: ``resource_pack_name``.
        kind: ``"image"`` or ``"video"``: the tasks whose charges it takes.
        total: ``total_quantity`` in units (Decimal, int or numeric string).
        type: ``resource_pack_type``, ``"decreasing_total"`` (default) or
            ``"constant_period"`` [account-usage].
        effective_at: Epoch seconds it takes effect. Default: a day before the sandbox starts.
        invalid_at: Epoch seconds it expires. Default: 365 days after the sandbox starts.
        purchased_at: Epoch seconds it was bought. Default: ``effective_at``.
        id: ``resource_pack_id``. Default: 32 random hex digits.

    Raises:
        ValueError: an unknown ``kind`` or ``type``, a negative ``total``, or ``invalid_at``
            before ``effective_at``.
    """

    name: str
    kind: Literal["image", "video"]
    total: Decimal = attrs.field(converter=_decimal)
    type: str = "decreasing_total"
    effective_at: float | None = None
    invalid_at: float | None = None
    purchased_at: float | None = None
    id: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("image", "video"):
            raise ValueError(f"kind: {self.kind!r}, need 'image' or 'video'")
        if self.type not in PACK_TYPES:
            raise ValueError(f"type: {self.type!r}, need one of {', '.join(PACK_TYPES)}")
        if (
            self.effective_at is not None
            and self.invalid_at is not None
            and self.invalid_at < self.effective_at
        ):
            raise ValueError("invalid_at: before effective_at")


def default_packs() -> tuple[ResourcePackSpec, ...]:
    """One image pack and one video pack of 10,000 units each."""
    return (
        ResourcePackSpec(name="Image Generation - 10,000 units", kind="image", total=10_000),
        ResourcePackSpec(name="Video Generation - 10,000 units", kind="video", total=10_000),
    )


@attrs.define
class _Pack:
    spec: ResourcePackSpec
    effective: float  # epoch seconds
    invalid: float
    remaining: Decimal

    def in_effect(self, at: float) -> bool:
        return self.effective <= at < self.invalid


class AccountCosts:
    """The account's packs and the ``GET /account/costs`` route (see the module docstring).

    Args:
        engine: The account's tasks (their charges come from there).
        packs: The packs; default :func:`default_packs`.
        remaining_delay: Seconds after a task's end before its charge shows in
            ``remaining_quantity``. Default 0.
        authenticate: The legacy routes' authentication.
        faults: Query faults, as on the other query routes.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        packs: Sequence[ResourcePackSpec] | None,
        remaining_delay: float,
        authenticate: Callable[[web.Request], None],
        faults: FaultInjector | None,
    ) -> None:
        if not remaining_delay >= 0:
            raise ValueError(f"remaining_delay: need seconds >= 0, got {remaining_delay!r}")
        specs = default_packs() if packs is None else tuple(packs)
        if not all(isinstance(p, ResourcePackSpec) for p in specs):
            raise TypeError("resource_packs: pass ResourcePackSpec items")
        self._engine = engine
        self._specs = specs
        self._delay = float(remaining_delay)
        self._authenticate = authenticate
        self._faults = faults
        self._started = time.time()
        self.query_times: list[float] = []
        """Epoch seconds at which each ``GET /account/costs`` arrived, in order."""

    # --- wire-API plumbing (as the other route sets) -------------------------------------------

    def owns(self, path: str, prefix: str) -> bool:
        """True for ``/account/costs``."""
        return path.removeprefix(prefix).rstrip("/") == PATH

    def unrouted(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        """Another method on the path: [errors] 1202 invalid method."""
        self._engine.counters.error(1202)
        return envelope(1202, f"Invalid method: {request.method} {request.path}", with_data=False)

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """The one route, under ``prefix``."""
        answer = envelope_handler(
            self._engine, self._faults, self._authenticate, self._answer, "account_queries"
        )

        async def handler(request: web.Request) -> web.Response:
            self.query_times.append(time.time())  # every arrival, refused ones too
            return await answer(request)

        return [web.get(prefix + PATH, handler)]

    # --- the ledger ----------------------------------------------------------------------------

    def packs(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every pack as the API shows it at epoch second ``now`` (default: now)."""
        now = time.time() if now is None else now
        return [self._wire(pack, now) for pack in self._ledger(now)]

    def _ledger(self, now: float) -> list[_Pack]:
        packs = [
            _Pack(
                spec,
                self._started - _DAY if spec.effective_at is None else spec.effective_at,
                self._started + 365 * _DAY if spec.invalid_at is None else spec.invalid_at,
                spec.total,
            )
            for spec in self._specs
        ]
        for kind, ended, charge in self._charges(now):
            for pack in packs:
                if charge <= 0:
                    break
                if pack.spec.kind == kind and pack.remaining > 0 and pack.in_effect(ended):
                    taken = min(pack.remaining, charge)
                    pack.remaining -= taken
                    charge -= taken
        return packs

    def _charges(self, now: float) -> Iterable[tuple[str, float, Decimal]]:
        """``(kind, end in epoch seconds, units)`` of every charge visible at ``now``."""
        engine = self._engine
        mono_now = engine.now()
        tasks = [*engine.of_api("kling"), *engine.of_api("kling-new")]
        charged = []
        for task in tasks:
            ended = engine.wall(task.end)
            if task.status(mono_now) is Status.SUCCEED and ended + self._delay <= now:
                charged.append((task.kind, ended, Decimal(task.units)))
        return sorted(charged, key=lambda item: item[1])

    def _wire(self, pack: _Pack, now: float) -> dict[str, Any]:
        if now < pack.effective:
            status = "toBeOnline"
        elif now >= pack.invalid:
            status = "expired"
        elif pack.remaining <= 0:
            status = "runOut"
        else:
            status = "online"
        spec = pack.spec
        purchased = pack.effective if spec.purchased_at is None else spec.purchased_at
        return {  # [account-usage]: field names and types as the page shows them
            "resource_pack_name": spec.name,
            "resource_pack_id": spec.id,
            "resource_pack_type": spec.type,
            "total_quantity": float(spec.total),
            "remaining_quantity": float(pack.remaining),
            "purchase_time": round(purchased * 1000),
            "effective_time": round(pack.effective * 1000),
            "invalid_time": round(pack.invalid * 1000),
            "status": status,
        }

    # --- the route -----------------------------------------------------------------------------

    async def _answer(self, request: web.Request) -> dict[str, Any]:
        now = time.time()
        start = _ms_param(request, "start_time")
        end = _ms_param(request, "end_time")
        if start > end:  # INFERRED [errors]: an empty window is an invalid parameter
            raise ApiError(1201, "Invalid parameter: start_time is after end_time")
        name = request.query.get("resource_pack_name")
        infos = [
            info
            for info in self.packs(now)
            if info["effective_time"] <= end
            and info["invalid_time"] >= start
            and (name is None or info["resource_pack_name"] == name)
        ]
        # [account-usage]: data is double-wrapped, {code, msg, resource_pack_subscribe_infos}
        return {"code": 0, "msg": "", "resource_pack_subscribe_infos": infos}


def _ms_param(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None:  # [account-usage]: required
        raise ApiError(1201, f"Invalid parameter: {name} is required (Unix time in ms)")
    if not raw.isdigit():  # [account-usage]: int, Unix timestamp in ms
        raise ApiError(1201, f"Invalid parameter: {name} must be Unix time in ms, got {raw!r}")
    return int(raw)

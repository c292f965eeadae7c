"""The account's resource packs, as ``KlingClient.account_costs()`` reports them.

Kling's ``GET /account/costs`` lists the resource packs under the account with their total
and remaining units [account-usage]. The wire names (``resource_pack_subscribe_infos[]``,
``remaining_quantity``, ...) stay in the Kling codec; this module holds the models only.

Sources:
[account-usage] https://kling.ai/document-api/api/assets/account-usage
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import attrs

__all__ = ["ResourcePack", "ResourcePackStatus"]


class ResourcePackStatus(enum.Enum):
    """A resource pack's state, spelt as Kling spells it [account-usage]."""

    TO_BE_ONLINE = "toBeOnline"
    """Bought, not yet in effect (before its ``effective_at``)."""
    ONLINE = "online"
    """In effect: tasks draw units from it."""
    EXPIRED = "expired"
    """Past its ``invalid_at``."""
    RUN_OUT = "runOut"
    """Every unit used."""


@attrs.frozen(kw_only=True)
class ResourcePack:
    """One resource pack under the account
    (https://kling.ai/document-api/api/assets/account-usage).

    Attributes:
        name: The pack's name (``resource_pack_name``), e.g.
            ``"Video Generation - 10,000 entries"``.
        id: The pack's id (``resource_pack_id``).
        type: ``"decreasing_total"`` (a total that tasks use up) or ``"constant_period"`` (a
            constant amount per period), as Kling names them (``resource_pack_type``); another
            value is passed through as sent.
        total: Units the pack holds in all (``total_quantity``), exact.
        remaining: Units left (``remaining_quantity``), exact. Kling documents a delay of up
            to 12 hours on this figure: units charged in the last 12 hours may not be
            subtracted yet, so use it for accounting, not as a live budget.
        status: A :class:`ResourcePackStatus`.
        purchased_at: When it was bought (``purchase_time``), aware UTC, when reported.
        effective_at: When it took or takes effect (``effective_time``), aware UTC, when
            reported.
        invalid_at: When it expires (``invalid_time``), aware UTC, when reported.
    """

    name: str
    id: str
    type: str
    total: Decimal
    remaining: Decimal
    status: ResourcePackStatus
    purchased_at: dt.datetime | None = None
    effective_at: dt.datetime | None = None
    invalid_at: dt.datetime | None = None

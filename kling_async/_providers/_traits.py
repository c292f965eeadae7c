"""What a wire API is, as the rest of the SDK needs to know it: a frozen :class:`ProviderTraits`.

Encoding and decoding stay in the codecs (``Codec``); everything a part above them decides by
(which credentials and environment variables, the default address and request limit, how quota
pools are named and sized, which lookups and queries exist, whether charges are reported) is a
field here, fixed per wire API, so deciding never needs a codec.
"""

from __future__ import annotations

import attrs

from .._models import Kind
from .._quota._config import Quota

__all__ = ["ProviderTraits"]


@attrs.frozen(kw_only=True)
class ProviderTraits:
    """One wire API's fixed facts and capabilities.

    Attributes:
        name: The provider's name, as users spell it (``"kling"``, ``"modellix"``).
        api_key_env: Environment variable holding the API key.
        base_url_env: Environment variable holding the API root.
        default_base_url: The API root when none is given.
        default_requests_per_minute: The documented per-key request limit, or None where
            there is none.
        supports_jwt: Whether AccessKey/SecretKey (HS256 JWT) authentication is accepted.
        supports_callbacks: Whether creates can carry a ``callback_url``.
        supports_external_lookup: Whether a task can be looked up by the client's
            ``external_task_id`` (else a lost create answer can never be resolved, and is never
            re-sent).
        supports_list_query: Whether one list query reports on many tasks (else single
            queries, budgeted).
        batch_query_size: Ids one unified query answers for, for the kinds in
            :attr:`batch_query_kinds` (0: no such query).
        batch_query_kinds: Kinds followed with the unified query.
        list_page_min, list_page_max: The list query's default and largest page size.
        shares_one_pool: Whether every model and kind share one concurrency pool (a team
            limit), in which a request costing more than the pool runs alone instead of never.
        reports_units: Whether an ended task's answer says what it was charged
            (``TaskResult.units``), which a unit budget needs.
        account_costs_interval: Seconds to keep between two account-costs queries (the
            documented rate limit; 0 where there is no such query).
    """

    name: str
    api_key_env: str
    base_url_env: str
    default_base_url: str
    default_requests_per_minute: float | None = None
    supports_jwt: bool = False
    supports_callbacks: bool = False
    supports_external_lookup: bool = False
    supports_list_query: bool = False
    batch_query_size: int = 0
    batch_query_kinds: frozenset[Kind] = frozenset()
    list_page_min: int = 30
    list_page_max: int = 500
    shares_one_pool: bool = False
    reports_units: bool = False
    account_costs_interval: float = 0.0

    def batch_size(self, kind: Kind) -> int:
        """Ids one unified query of ``kind`` answers for (0: no such query for ``kind``)."""
        return self.batch_query_size if kind in self.batch_query_kinds else 0

    def pool_name(self, model: str, kind: Kind) -> str:
        """The quota pool a task of ``(model, kind)`` holds slots in: ``"{name}:team"`` where
        one team limit covers every model, else ``"{model}:{kind}"`` (concurrency counted per
        model and pack type, https://kling.ai/document-api/api/get-started/concurrency-rules)."""
        return f"{self.name}:team" if self.shares_one_pool else f"{model}:{kind}"

    def pool_capacity(self, quota: Quota, model: str, kind: Kind) -> int:
        """Slots of that pool under ``quota``: ``Quota.team`` on a team pool, else
        ``Quota.capacity(model, kind)``."""
        return quota.team if self.shares_one_pool else quota.capacity(model, kind)

    def list_page_size(self, tracked: int) -> int:
        """Page size for a list poll reaching ``tracked`` tasks (the client's tasks created
        since its oldest in flight, newest first) with a tenth more and 5 to spare for creates
        still being answered and other programs' tasks, within
        :attr:`list_page_min`–:attr:`list_page_max`."""
        return min(self.list_page_max, max(self.list_page_min, tracked + tracked // 10 + 5))

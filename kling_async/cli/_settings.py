"""A command's client settings checked by the client's own check, before anything is sent or
created: ``resolve_settings`` (what ``KlingClient(...)`` runs) and ``check_budget_units`` (what
``stream(budget_units=...)`` runs), their ``ValueError`` / ``TypeError`` as one line.

The messages are the client's, naming each setting as this command line knows it: ``--base-url``
for the keyword ``base_url``, the environment variables by their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from .._engine._budget import check_budget_units
from .._errors import SetupError
from .._http._settings import Wording, resolve_settings
from ._run import SANDBOX_KEY

__all__ = ["WORDING", "check_client_settings"]

WORDING = Wording(
    names={"base_url": "--base-url", "api_standard": "--api-standard"},
    arguments=False,
    offline="--sandbox",
)
_SANDBOX_URL = "http://127.0.0.1"  # stands in for the sandbox's address, known once it serves


def check_client_settings(
    provider: str,
    api_standard: Literal["legacy", "new"] = "legacy",
    *,
    sandbox: bool = False,
    base_url: str | None = None,
    budgets: Mapping[str, Decimal | None] | None = None,
) -> None:
    """Check what a run will give its client: the wire API, the credentials (the sandbox's own
    key with ``sandbox``), the base URL, and that the wire API can keep each of ``budgets``
    (flag → units, or None when not given). Sends nothing, creates nothing.

    Raises:
        SetupError: the client's refusal, in its words.
    """
    try:
        settings = resolve_settings(
            provider=provider,
            api_standard=api_standard,
            api_key=SANDBOX_KEY if sandbox else None,
            base_url=base_url or (_SANDBOX_URL if sandbox else None),
            wording=WORDING,
        )
        traits = settings.traits
        for flag, units in (budgets or {}).items():
            check_budget_units(
                units, reports_units=traits.reports_units, wire_api=traits.name, name=flag
            )
    except (ValueError, TypeError) as exc:
        raise SetupError(str(exc)) from None

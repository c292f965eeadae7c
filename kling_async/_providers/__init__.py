"""Wire APIs: the codecs (the only code that knows paths, field names and envelopes), their
:class:`ProviderTraits`, and the factories that pick them by provider name.

:func:`codec_for` is the one place that picks a codec by provider name; :func:`traits_for` and
:func:`request_check` answer the questions asked before any client exists (the command line's).
The engine talks to a wire API through :class:`~._api.ProviderAPI` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from .._models import Request
from ._codec import Codec
from ._traits import ProviderTraits
from .kling import TRAITS as KLING_TRAITS
from .kling import KlingCodec
from .kling_new import NEW_TRAITS, KlingNewCodec
from .modellix import TRAITS as MODELLIX_TRAITS
from .modellix import ModellixCodec

__all__ = [
    "API_STANDARDS",
    "PROVIDERS",
    "Codec",
    "ProviderTraits",
    "codec_for",
    "request_check",
    "traits_for",
]

PROVIDERS = ("kling", "modellix")
API_STANDARDS = ("legacy", "new")  # Kling's two API standards


def codec_for(
    provider: str,
    *,
    submit_path: Literal["async", "plain"] = "async",
    api_standard: Literal["legacy", "new"] = "legacy",
) -> Codec:
    """The codec of wire API ``provider`` (one of :data:`PROVIDERS`); on Kling,
    ``api_standard="new"`` sends videos in Kling's new standard.

    Raises:
        ValueError: an unknown provider, ``submit_path`` or ``api_standard``, or the new
            standard on Modellix.
    """
    if submit_path not in ("async", "plain"):
        raise ValueError(f"submit_path: {submit_path!r}, must be 'async' or 'plain'")
    if api_standard not in API_STANDARDS:
        raise ValueError(f"api_standard: {api_standard!r}, must be 'legacy' or 'new'")
    if api_standard == "new":
        if provider != "kling":
            raise ValueError(f"api_standard='new': Kling's own API only, not {provider!r}")
        return KlingNewCodec()
    codecs: dict[str, Codec] = {
        "kling": KlingCodec(),
        "modellix": ModellixCodec(submit_path=submit_path),
    }
    if provider not in codecs:
        raise ValueError(f"provider: {provider!r}, must be one of {', '.join(PROVIDERS)}")
    return codecs[provider]


def traits_for(
    provider: str,
    *,
    submit_path: Literal["async", "plain"] = "async",
    api_standard: Literal["legacy", "new"] = "legacy",
) -> ProviderTraits:
    """The traits of wire API ``provider`` (credentials, defaults, pools, capabilities).

    Raises:
        ValueError: as :func:`codec_for`, for the same arguments.
    """
    codec_for(provider, submit_path=submit_path, api_standard=api_standard)  # the same checks
    if api_standard == "new":
        return NEW_TRAITS
    return MODELLIX_TRAITS if provider == "modellix" else KLING_TRAITS


def request_check(
    provider: str, *, api_standard: Literal["legacy", "new"] = "legacy"
) -> Callable[[Request], None]:
    """What refuses, before sending, a request wire API ``provider`` cannot carry (raising
    ``InvalidInputError``, naming the provider and the field).

    Raises:
        ValueError: as :func:`codec_for`.
    """
    return codec_for(provider, api_standard=api_standard).check

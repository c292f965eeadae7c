"""Wire codecs: the only code that knows paths, field names and envelopes.

:func:`codec_for` is the one place that picks a codec by provider name.
"""

from __future__ import annotations

from typing import Literal

from ._codec import Codec
from .kling import KlingCodec
from .kling_new import KlingNewCodec
from .modellix import ModellixCodec

__all__ = ["API_STANDARDS", "PROVIDERS", "Codec", "codec_for"]

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

"""Wire codecs: the only code that knows paths, field names and envelopes.

:func:`codec_for` is the one place that picks a codec by provider name.
"""

from __future__ import annotations

from typing import Literal

from ._codec import Codec
from .kling import KlingCodec
from .modellix import ModellixCodec

__all__ = ["PROVIDERS", "Codec", "codec_for"]

PROVIDERS = ("kling", "modellix")


def codec_for(provider: str, *, submit_path: Literal["async", "plain"] = "async") -> Codec:
    """The codec of wire API ``provider`` (one of :data:`PROVIDERS`).

    Raises:
        ValueError: an unknown provider or ``submit_path``.
    """
    if submit_path not in ("async", "plain"):
        raise ValueError(f"submit_path: {submit_path!r}, must be 'async' or 'plain'")
    codecs: dict[str, Codec] = {
        "kling": KlingCodec(),
        "modellix": ModellixCodec(submit_path=submit_path),
    }
    if provider not in codecs:
        raise ValueError(f"provider: {provider!r}, must be one of {', '.join(PROVIDERS)}")
    return codecs[provider]

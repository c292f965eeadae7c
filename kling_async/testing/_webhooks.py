"""Standard Webhooks signing of the sandbox's callbacks [callbacks], with the standard library
only (the sandbox shares no code with the SDK's verifier).

Sources:
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

# [callbacks]: the prefix of a Standard Webhooks secret (the rest is the base64 key).
SECRET_PREFIX: Final = "whsec_"


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` webhook secret [callbacks].

    Args:
        secret: ``"whsec_"`` followed by the base64 key (the prefix may be left out, as the
            Standard Webhooks libraries allow).

    Raises:
        ValueError: the part after the prefix is not base64, or decodes to nothing.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"callback_secret: expected '{SECRET_PREFIX}' followed by base64, got {secret!r}"
        ) from None
    if not key:
        raise ValueError("callback_secret: the key after 'whsec_' is empty")
    return key


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one callback ([callbacks], Standard Webhooks).

    ``"v1," + base64(HMAC-SHA256(key=b64decode(secret without "whsec_"),
    msg=f"{msg_id}.{timestamp}.{body}"))``, computed with the standard library only (the
    sandbox shares no code with the SDK's verifier).

    Args:
        secret: The ``whsec_...`` secret.
        msg_id: The ``webhook-id`` header value.
        timestamp: The ``webhook-timestamp`` header value, epoch seconds.
        body: The raw request body, exactly as sent.

    Raises:
        ValueError: ``secret`` is not a valid webhook secret.
    """
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhook_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")

"""HTTP transport: the only module that knows aiohttp.

It sends one request, reads the answer, and translates aiohttp's exceptions into the SDK's
tree (:class:`TransportError`, :class:`RequestTimeoutError`) in :func:`_translate`. It does not
interpret envelopes: the provider codec does.

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs

from ._auth import ApiKeyAuth, JwtAuth
from ._errors import RequestTimeoutError, TransportError

__all__ = ["Response", "Transport", "new_session"]

_log = logging.getLogger("kling_async.http")


@attrs.frozen
class Response:
    """An HTTP answer: status, headers (case-insensitive), and the body parsed as JSON
    (``None`` if it is not)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes = b""

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced), for error messages."""
        return self.raw.decode("utf-8", errors="replace")


@attrs.define
class Transport:
    """Sends authenticated JSON requests to ``base_url`` + path over one aiohttp session.

    Attributes:
        requests_sent: How many HTTP requests this transport has sent (a counter for stats).
    """

    _session: aiohttp.ClientSession
    base_url: str
    _auth: ApiKeyAuth | JwtAuth = attrs.field(repr=False)
    request_timeout: float | None = 30.0
    requests_sent: int = 0
    _timeout: aiohttp.ClientTimeout = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._timeout = aiohttp.ClientTimeout(total=self.request_timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and return the answer, whatever its HTTP status.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: Path below ``base_url`` (starting with ``/``).
            json_body: Body to send as JSON.
            params: Query string parameters.

        Raises:
            TransportError: the exchange failed; ``sent`` says whether the server may have
                received the request.
            RequestTimeoutError: no answer within ``request_timeout`` seconds.
        """
        headers = {"Authorization": self._auth.header(), "Accept": "application/json"}
        self.requests_sent += 1
        started = time.perf_counter() if _log.isEnabledFor(logging.DEBUG) else None
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                # resp.headers is an immutable proxy that outlives the exchange: no copy needed
                response = Response(resp.status, resp.headers, _parse_json(raw), raw)
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = _translate(exc, method, path)
            if started is not None:
                _log.debug("%s %s failed after %.0f ms: %s", method, path, _ms(started), error)
            raise error from exc
        if started is not None:
            data = response.body
            request_id = data.get("request_id") if isinstance(data, dict) else None
            _log.debug(
                "%s %s%s -> %d in %.0f ms (request_id %s)",
                method,
                path,
                f"?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else "",
                response.status,
                _ms(started),
                request_id,
            )
        return response

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> str:
        """Stream ``url`` into the file ``dest`` (created or truncated) with a plain GET and no
        ``Authorization`` header (result URLs are hotlink-protected, not authenticated;
        [omni-image]).

        Returns:
            The answer's ``Content-Type`` (without parameters), lower-case.

        Raises:
            TransportError: the exchange failed, the status is not 200, or the body exceeds
                ``max_bytes``.
        """
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        try:
            async with self._session.get(url, timeout=timeout, allow_redirects=True) as resp:
                if resp.status != 200:
                    raise TransportError(
                        f"GET {_redact(url)}: HTTP {resp.status}", http_status=resp.status
                    )
                declared = resp.content_length
                if declared is not None and declared > max_bytes:
                    raise TransportError(
                        f"GET {_redact(url)}: {declared} bytes, over the {max_bytes}-byte cap",
                        http_status=resp.status,
                    )
                size = 0
                async with await anyio.open_file(dest, "wb") as out:
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise TransportError(
                                f"GET {_redact(url)}: body over the {max_bytes}-byte cap",
                                http_status=resp.status,
                            )
                        await out.write(chunk)
                return (resp.content_type or "").lower()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _translate(exc, "GET", _redact(url)) from exc

    def invalidate_auth(self) -> bool:
        """Drop a cached JWT so the next request re-signs. ``False`` for a static API key."""
        return self._auth.invalidate()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def new_session(connections: int) -> aiohttp.ClientSession:
    """A session whose connection pool holds up to ``connections`` connections at once
    (aiohttp's default is 100: above that, requests queue inside aiohttp for a connection)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))


def _redact(url: str) -> str:
    """A URL without its query string (signatures stay out of messages and logs)."""
    return url.split("?", 1)[0]


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # also UnicodeDecodeError
        return None


def _translate(exc: BaseException, method: str, path: str) -> TransportError:
    """Map an aiohttp/asyncio exception to the SDK's tree (the one place this happens)."""
    where = f"{method} {path}"
    if isinstance(exc, asyncio.TimeoutError):
        return RequestTimeoutError(f"{where}: no answer within the request timeout", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Raised while connecting: nothing was sent.
        return TransportError(f"{where}: cannot connect ({exc.os_error})", sent=False)
    return TransportError(f"{where}: {type(exc).__name__}: {exc}", sent=True)

"""HTTP transport: the only module that knows aiohttp.

It sends one request, reads the answer, and translates aiohttp's exceptions into the SDK's
tree (:class:`TransportError`, :class:`RequestTimeoutError`) in :func:`_translate`. It does not
interpret envelopes: the provider codec does.

Nothing a server sends is read without a bound: an API answer is read up to
:data:`MAX_ANSWER_BYTES` (an answer over it is a :class:`ResponseFormatError`), and a download
is capped in size and must keep up a minimum throughput (:meth:`Transport.download`).

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

from .._errors import RequestTimeoutError, ResponseFormatError, TransportError
from ._auth import ApiKeyAuth, JwtAuth

__all__ = ["MAX_ANSWER_BYTES", "Response", "Transport", "new_session"]

# Largest API answer read, in bytes (16 MiB). Kling's answers are a few kB (a list page of 500
# tasks is well under 1 MiB), so this only stops a broken or hostile server.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 16  # bytes read at a time from an answer or a download

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
        max_answer_bytes: The largest API answer read, in bytes (default
            :data:`MAX_ANSWER_BYTES`, 16 MiB); at most one byte more is ever buffered.
    """

    _session: aiohttp.ClientSession
    base_url: str
    _auth: ApiKeyAuth | JwtAuth = attrs.field(repr=False)
    request_timeout: float | None = 30.0
    max_answer_bytes: int = MAX_ANSWER_BYTES
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
            ResponseFormatError: the answer is over ``max_answer_bytes`` (the connection is
                closed without reading the rest).
        """
        headers = {"Authorization": self._auth.header(), "Accept": "application/json"}
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
                raw = await _read_capped(resp, self.max_answer_bytes, f"{method} {path}")
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

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, min_rate: float | None, grace: float
    ) -> str:
        """Stream ``url`` into the file ``dest`` (created or truncated) with a plain GET and no
        ``Authorization`` header (result URLs are hotlink-protected, not authenticated;
        [omni-image]).

        The download must keep up ``min_rate`` bytes per second after ``grace`` seconds: by
        ``t`` seconds after the request starts, at least ``(t - grace) × min_rate`` bytes must
        have arrived, so a file of ``S`` bytes takes at most ``grace + S / min_rate`` seconds
        (the whole-file limit). ``min_rate=None`` removes the floor (a read still fails after
        60 s without a byte). On failure ``dest`` may hold part of the body: the caller removes
        it.

        Returns:
            The answer's ``Content-Type`` (without parameters), lower-case.

        Raises:
            TransportError: the exchange failed, the status is not 200, or the body exceeds
                ``max_bytes``.
            RequestTimeoutError: the body came slower than ``min_rate`` after ``grace``.
        """
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        started = anyio.current_time()
        size = 0
        with anyio.CancelScope() as floor:
            if min_rate is not None:
                floor.deadline = started + grace
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
                    out = await anyio.to_thread.run_sync(dest.open, "wb")
                    try:
                        async for chunk in resp.content.iter_chunked(_CHUNK):
                            size += len(chunk)
                            if size > max_bytes:
                                raise TransportError(
                                    f"GET {_redact(url)}: body over the {max_bytes}-byte cap",
                                    http_status=resp.status,
                                )
                            await anyio.to_thread.run_sync(out.write, chunk)
                            if min_rate is not None:
                                floor.deadline = started + grace + size / min_rate
                    finally:
                        out.close()  # also when cancelled: a close must not wait for a thread
                    return (resp.content_type or "").lower()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _translate(exc, "GET", _redact(url)) from exc
        raise RequestTimeoutError(
            f"GET {_redact(url)}: {size} bytes in {anyio.current_time() - started:.1f} s, "
            f"slower than the floor of {min_rate:g} bytes/s after a {grace:g} s grace",
            sent=True,
        )

    def invalidate_auth(self) -> bool:
        """Drop a cached JWT so the next request re-signs. ``False`` for a static API key."""
        return self._auth.invalidate()


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, where: str) -> bytes:
    """The body of ``resp``, reading at most ``limit + 1`` bytes of it.

    Raises:
        ResponseFormatError: the body is (or declares itself) over ``limit`` bytes.
    """
    declared = resp.content_length
    if declared is None or declared <= limit:
        body = bytearray()
        while len(body) <= limit:
            chunk = await resp.content.read(min(_CHUNK, limit + 1 - len(body)))
            if not chunk:
                return bytes(body)
            body += chunk
    raise ResponseFormatError(
        f"{where}: HTTP {resp.status} answer over the {limit}-byte limit on API answers "
        "(max_answer_bytes); the rest was not read"
    )


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

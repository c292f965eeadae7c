"""A small aiohttp server that receives Kling's task callbacks, [callbacks]).

Kling POSTs a JSON body to a create's ``callback_url`` each time the task's status changes
[callbacks]. :class:`CallbackReceiver` listens for those POSTs, answers at once and hands
each one to its subscribers as a :class:`CallbackHint`; :class:`~kling_async.KlingClient`
subscribes when given ``callbacks=receiver`` and sets ``receiver.url`` as the ``callback_url`` of
its creates.

Security model: a callback is only a *hint*. The client never ends a task because of one: a hint
that says a task it follows has ended makes it send an authenticated query at once, and the
answer to that query is the result. A forged callback can therefore cost one extra query, never
a wrong result. Signatures (Standard Webhooks, [callbacks]) are still worth checking when
the console has a webhook secret: pass it as ``secret=`` and unsigned, forged or replayed POSTs
are refused with 401 before anyone sees them. A replay is a validly signed POST whose
``webhook-id`` was already accepted within the signature tolerance (5 minutes by default); ids
are forgotten once their timestamp leaves that window (a replay after it fails the timestamp
check instead), so the memory they take is bounded by the callbacks of one window.

Delivery facts Kling does not document ([callbacks] GAP): retries, timeouts and ordering.
Callbacks may come late, twice, out of order or not at all, so the client keeps polling (ten
times slower) as a safety net, and duplicates are harmless.

Sources:
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import attrs
from aiohttp import web
from standardwebhooks.webhooks import Webhook

__all__ = ["CallbackHint", "CallbackReceiver", "ReceiverStats"]

_log = logging.getLogger("kling_async.callbacks")

DEFAULT_PATH: Final = "/kling/callback"
# Largest callback body accepted, in bytes. A callback carries a few result URLs [callbacks];
# 1 MiB is far above any real one and keeps a stranger from making the receiver buffer much.
MAX_BODY: Final = 1024 * 1024
# How many webhook ids and (task_id, task_status) pairs are remembered to count duplicates
# (and, with a secret but no tolerance, to refuse replays): the oldest are forgotten first.
_SEEN_LIMIT: Final = 10_000
# ``webhook-timestamp`` is integer seconds since the epoch [callbacks]; 10 digits reach 2286.
_TIMESTAMP = re.compile(r"[0-9]{1,10}")


def _wall_clock() -> float:
    """Seconds since the epoch; the clock ``webhook-timestamp`` is checked against.

    A module-level function so that a test can move "now" for this module alone (Kling's
    published test vector, [callbacks], is signed at a fixed moment in the past).
    """
    return time.time()


@attrs.frozen(kw_only=True)
class CallbackHint:
    """One accepted callback, as given to subscribers.

    A hint is never trusted to end a task: it only says "query this task now" (see the module
    docstring).

    Attributes:
        task_id: Kling's task id (legacy ``task_id``, or ``id`` in a new-standard body,
            [callbacks]/[callbacks]).
        external_task_id: The caller's ``task_info.external_task_id`` (legacy) or
            ``external_id`` (new standard); ``None`` when absent or empty.
        task_status: The status exactly as sent, e.g. ``"processing"`` or ``"succeed"``
            (legacy, [callbacks]) or ``"succeeded"`` (new standard, [callbacks]). Compare it with
            the codec's wire names, not with :class:`~kling_async.TaskStatus`.
        received_at: ``time.monotonic()`` seconds when the POST was read: the clock asyncio's
            default event loop (and so ``anyio.current_time()`` under asyncio) uses, so it can
            be compared with loop times to measure callback latency.
        webhook_id: The ``webhook-id`` header, if the POST had one (signed callbacks, [callbacks]).
        duplicate: ``True`` when the same ``(task_id, task_status)`` (or, on a receiver without
            a secret, the same ``webhook-id``) was already accepted (see
            :attr:`ReceiverStats.duplicates`). With a secret, a repeated ``webhook-id`` is
            refused as a replay, never passed on.
    """

    task_id: str
    external_task_id: str | None
    task_status: str
    received_at: float
    webhook_id: str | None = None
    duplicate: bool = False


@attrs.define
class ReceiverStats:
    """Counters of what a :class:`CallbackReceiver` saw.

    Every POST to the receiver's path counts in ``received`` and in exactly one of
    ``accepted``, ``rejected_signature``, ``rejected_replay`` or ``malformed``.

    Attributes:
        received: POSTs to the callback path.
        accepted: POSTs verified (when a secret is set) and parsed; answered 200 and passed on.
        duplicates: Accepted POSTs whose ``(task_id, task_status)`` (or, without a secret,
            whose ``webhook-id``) had already been accepted (of the last 10 000 remembered).
            They are passed on too: a duplicate is harmless to the client, and a redelivery
            may be the first one a subscriber can use.
        rejected_signature: POSTs refused with 401: a secret is set and a ``webhook-*`` header
            was missing or malformed, the timestamp was outside the tolerance, or no
            signature matched.
        rejected_replay: Signed POSTs refused with 401 because their ``webhook-id`` had
            already been accepted within the tolerance window (a secret must be set).
        malformed: POSTs refused with 400 (body not a JSON object with a task id and a status)
            or 413 (body larger than 1 MiB).
        subscriber_errors: Exceptions raised by subscribers (logged, then ignored).
    """

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_signature: int = 0
    rejected_replay: int = 0
    malformed: int = 0
    subscriber_errors: int = 0


class CallbackReceiver:
    """An HTTP server that receives Kling task callbacks and passes them on as hints.

    Start it before the client that uses it, and close it after::

        async with CallbackReceiver(public_url="https://abc.example/kling/callback",
                                    secret="whsec_...") as receiver:
            async with KlingClient(api_key="...", callbacks=receiver) as client:
                ...

    Kling's servers must be able to reach :attr:`url`: on a laptop that means a tunnel or a
    reverse proxy forwarding to ``host:port`` and ``public_url`` set to the address Kling sees.

    Each POST to ``path`` is answered with a small JSON body and status 200 (accepted), 400
    (malformed), 401 (signature refused) or 413 (too large), before any subscriber runs.
    The body is parsed leniently: the legacy callback ([callbacks]: ``task_id``,
    ``task_status``, ``task_info.external_task_id``, other fields ignored) and the new-standard
    one ([callbacks]: ``id``, ``status``, ``external_id``; the console's "Send Test Callback" posts
    that shape) are both accepted.

    Args:
        host: Interface to listen on. Default ``"127.0.0.1"`` (only this machine; use
            ``"0.0.0.0"`` behind a tunnel or proxy running elsewhere).
        port: TCP port; 0 (default) picks a free one, see :attr:`port` after :meth:`start`.
        path: URL path of the callback endpoint. Default ``"/kling/callback"``.
        public_url: The URL Kling must POST to (e.g. a tunnel's address), returned by
            :attr:`url`. Default ``None``: ``http://{host}:{port}{path}`` of the bound socket,
            which only reaches Kling if this machine is publicly reachable.
        secret: The console's webhook secret (``"whsec_..."``, [callbacks]). With it, POSTs
            without valid ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
            headers are refused with 401, and so is a second POST with an already accepted
            ``webhook-id`` within ``tolerance`` (a replay). Without it (default) every
            well-formed POST is
            accepted: anyone who can reach the URL can send hints. That costs at most extra
            queries (a hint is confirmed by an authenticated query before anything is
            believed), but setting a secret is recommended.
        tolerance: Seconds ``webhook-timestamp`` may differ from this machine's clock before a
            signed POST is refused as stale (or from the future); it bounds replays, and how
            long accepted ``webhook-id`` values are remembered to refuse them. Default
            300.0 (5 minutes, as [callbacks] prescribes); ``None`` disables the check (ids
            are then remembered up to the last 10 000).

    Raises:
        ValueError: ``secret`` is not a Standard Webhooks secret (``"whsec_"`` + base64),
            ``path`` does not start with ``/``, ``public_url`` is not http(s), ``port`` or
            ``tolerance`` out of range.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        public_url: str | None = None,
        secret: str | None = None,
        tolerance: float | None = 300.0,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path: {path!r}, must start with '/'")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url: {public_url!r}, must be an http(s) URL")
        if not 0 <= port <= 65535:
            raise ValueError(f"port: {port}, must be in [0, 65535]")
        if tolerance is not None and not tolerance > 0:
            raise ValueError(f"tolerance: {tolerance} s, must be > 0 (or None to disable)")
        self._webhook: Webhook | None = None
        if secret is not None:
            try:
                self._webhook = Webhook(secret)
            except Exception as exc:  # binascii.Error, EmptyWebhookSecretError
                raise ValueError(
                    "secret: not a Standard Webhooks secret ('whsec_' followed by base64)"
                ) from exc
        self.host = host
        self.path = path
        self.public_url = public_url
        self.tolerance = tolerance
        self.stats = ReceiverStats()
        self._port = port
        self._subscribers: dict[object, Callable[[CallbackHint], None]] = {}
        self._seen: OrderedDict[tuple[str, ...], None] = OrderedDict()
        # Signed webhook ids accepted, in arrival order, with their webhook-timestamp (seconds).
        self._signed_ids: OrderedDict[str, int] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._closed = False

    def __repr__(self) -> str:
        signed = self._webhook is not None
        where = self.public_url or f"{self.host}:{self._bound_port or self._port}{self.path}"
        return f"CallbackReceiver({where!r}, signed={signed})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start serving.

        Raises:
            RuntimeError: already started, or closed.
            OSError: the port cannot be bound.
        """
        if self._runner is not None or self._closed:
            raise RuntimeError("CallbackReceiver.start() may be called once, before aclose()")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await self.aclose()
            raise
        self._bound_port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        """Stop serving and release the socket. Idempotent."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: the receiver has not been started.
        """
        if self._bound_port is None:
            raise RuntimeError("CallbackReceiver.port: call start() first")
        return self._bound_port

    @property
    def url(self) -> str:
        """The URL Kling should POST to: ``public_url`` if given, else
        ``http://{host}:{port}{path}`` of the bound socket (``127.0.0.1`` for a wildcard host).

        Raises:
            RuntimeError: no ``public_url`` and the receiver has not been started.
        """
        if self.public_url is not None:
            return self.public_url
        if self._bound_port is None:
            raise RuntimeError("CallbackReceiver.url: call start() first, or pass public_url")
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._bound_port}{self.path}"

    # -- subscribers -------------------------------------------------------------------------

    def subscribe(self, on_hint: Callable[[CallbackHint], None]) -> Callable[[], None]:
        """Call ``on_hint(hint)`` for every accepted callback, after the POST is answered.

        ``on_hint`` runs on the event loop, so it must be quick and must not block: schedule
        work (e.g. ``task_group.start_soon``), do not do it. An exception it raises is logged
        (logger ``kling_async.callbacks``) and counted in
        :attr:`ReceiverStats.subscriber_errors`; the server and the other subscribers go on.

        Returns:
            A function that removes this subscription (idempotent).
        """
        token = object()
        self._subscribers[token] = on_hint

        def unsubscribe() -> None:
            self._subscribers.pop(token, None)

        return unsubscribe

    # -- request handling --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.received += 1
        received_at = time.monotonic()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            stats.malformed += 1
            return _answer(413, f"body larger than {MAX_BODY} bytes")
        if self._webhook is not None:
            refusal = self._verify(self._webhook, body, request.headers)
            if refusal is not None:
                stats.rejected_signature += 1
                _log.warning("callback refused (401): %s", refusal)
                return _answer(401, "signature verification failed")
            if self._replayed(request.headers["webhook-id"]):
                stats.rejected_replay += 1
                _log.warning("callback refused (401): webhook-id already accepted (a replay)")
                return _answer(401, "webhook-id already accepted")
        try:
            fields = _parse(body)
        except ValueError as exc:
            stats.malformed += 1
            _log.warning("callback refused (400): %s", exc)
            return _answer(400, "malformed callback body")
        webhook_id = request.headers.get("webhook-id") or None
        task_id, external_task_id, task_status = fields
        if self._webhook is not None and webhook_id is not None:
            self._signed_ids[webhook_id] = int(request.headers["webhook-timestamp"])
            webhook_id_key = None  # replays are refused above, not counted as duplicates
        else:
            webhook_id_key = webhook_id
        duplicate = self._remember(webhook_id_key, task_id, task_status)
        stats.accepted += 1
        if duplicate:
            stats.duplicates += 1
        hint = CallbackHint(
            task_id=task_id,
            external_task_id=external_task_id,
            task_status=task_status,
            received_at=received_at,
            webhook_id=webhook_id,
            duplicate=duplicate,
        )
        response = _answer(200, None)
        try:  # answer first: subscriber work never delays (or breaks) the sender's 200
            await response.prepare(request)
            await response.write_eof()
        finally:  # the callback was authentic even if the sender hung up
            self._deliver(hint)
        return response

    def _verify(self, webhook: Webhook, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Check the Standard Webhooks signature [callbacks]; the reason for refusal,
        or ``None`` when it is valid.

        The HMAC itself is the library's (:meth:`Webhook.sign`); the header parsing, the
        tolerance and the constant-time comparison are done here, because
        :meth:`Webhook.verify` hard-codes a 5-minute window against the wall clock and raises
        ``ValueError`` / ``binascii.Error`` (not its verification error) on some malformed
        headers.
        """
        msg_id = headers.get("webhook-id")
        raw_timestamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not (msg_id and raw_timestamp and signatures):
            return "missing webhook-id, webhook-timestamp or webhook-signature header"
        if not _TIMESTAMP.fullmatch(raw_timestamp):
            return f"webhook-timestamp {raw_timestamp[:20]!r} is not integer seconds"
        timestamp = int(raw_timestamp)
        if self.tolerance is not None:
            skew = _wall_clock() - timestamp
            if abs(skew) > self.tolerance:
                return f"webhook-timestamp is {skew:+.0f} s from now (tolerance {self.tolerance} s)"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return "body is not UTF-8"
        expected = webhook.sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), text)
        expected_mac = base64.b64decode(expected.partition(",")[2])
        for candidate in signatures.split():  # several during a secret rotation [callbacks]
            version, _, value = candidate.partition(",")
            if version != "v1":
                continue
            try:
                mac = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(mac, expected_mac):
                return None
        return "no matching v1 signature"

    def _replayed(self, webhook_id: str) -> bool:
        """Whether a verified POST's ``webhook-id`` was already accepted. Ids whose timestamp
        has left the tolerance window are forgotten first: a replay of one of them is refused
        by the timestamp check."""
        ids = self._signed_ids
        if self.tolerance is not None:
            # Arrival order is timestamp order within twice the tolerance, so pruning from the
            # front keeps at most about two windows of ids.
            oldest = _wall_clock() - self.tolerance
            while ids and next(iter(ids.values())) < oldest:
                ids.popitem(last=False)
        elif len(ids) > _SEEN_LIMIT:
            ids.popitem(last=False)
        return webhook_id in ids

    def _remember(self, webhook_id: str | None, task_id: str, task_status: str) -> bool:
        """Record this delivery; whether its webhook id or (task, status) was seen before."""
        keys: list[tuple[str, ...]] = [("status", task_id, task_status)]
        if webhook_id is not None:
            keys.append(("id", webhook_id))
        seen = self._seen
        duplicate = any(key in seen for key in keys)
        for key in keys:
            seen[key] = None
            seen.move_to_end(key)
        while len(seen) > _SEEN_LIMIT:
            seen.popitem(last=False)
        return duplicate

    def _deliver(self, hint: CallbackHint) -> None:
        for on_hint in list(self._subscribers.values()):
            try:
                on_hint(hint)
            except Exception:
                self.stats.subscriber_errors += 1
                _log.exception("callback subscriber %r raised on %r", on_hint, hint)


def _answer(status: int, error: str | None) -> web.Response:
    body: dict[str, Any] = {"ok": True} if error is None else {"ok": False, "error": error}
    return web.json_response(body, status=status)


def _parse(body: bytes) -> tuple[str, str | None, str]:
    """``(task_id, external_task_id, task_status)`` of a callback body, leniently.

    Legacy shape [callbacks]: ``task_id``, ``task_status``,
    ``task_info.external_task_id``. New-standard shape [callbacks]: ``id``, ``status``,
    ``external_id``. Other fields are ignored.

    Raises:
        ValueError: not a JSON object, or no non-empty task id / status string.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"body is a JSON {type(data).__name__}, not an object")
    external: object
    if "task_id" in data:
        task_id, status = data.get("task_id"), data.get("task_status")
        info = data.get("task_info")
        external = info.get("external_task_id") if isinstance(info, dict) else None
    else:
        task_id, status = data.get("id"), data.get("status")
        external = data.get("external_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("no task_id (or id) string")
    if not isinstance(status, str) or not status:
        raise ValueError("no task_status (or status) string")
    return task_id, external if isinstance(external, str) and external else None, status

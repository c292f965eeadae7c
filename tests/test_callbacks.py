"""The callback receiver over real sockets on 127.0.0.1 (reference §10.1, §10.3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

import kling_async as ka
from kling_async._http import _callbacks
from kling_async._http._callbacks import CallbackHint, CallbackReceiver
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio

# Kling's published Standard Webhooks test vector (reference §10.3 [S16 §4d]).
SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
VECTOR_ID = "9876543210"
VECTOR_TIMESTAMP = 1781080794
VECTOR_BODY = (
    b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151}'
)
VECTOR_SIGNATURE = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="
OTHER_SECRET = "whsec_" + base64.b64encode(b"not the console secret, 32 bytes").decode()


def _sign(
    body: bytes, *, secret: str = SECRET, msg_id: str = "msg-1", ts: int | None = None
) -> dict[str, str]:
    """``webhook-*`` headers computed from the §10.3 formula (independently of the library)."""
    ts = int(time.time()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def _legacy(task_id: str = "t-1", status: str = "succeed", external: str = "ext-1") -> bytes:
    """A legacy callback body (reference §10.1)."""
    return json.dumps(
        {
            "task_id": task_id,
            "task_status": status,
            "task_status_msg": "",
            "created_at": 1781080778802,
            "updated_at": 1781080794151,
            "final_unit_deduction": "1",
            "task_info": {"external_task_id": external},
            "task_result": {"images": [{"index": 0, "url": "https://cdn.example/0.png"}]},
        }
    ).encode()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    """A receiver verifying signatures with the test-vector secret."""
    async with CallbackReceiver(secret=SECRET) as r:
        yield r


@pytest.fixture
async def open_receiver() -> AsyncIterator[CallbackReceiver]:
    """A receiver without a secret."""
    async with CallbackReceiver() as r:
        yield r


def _collect(receiver: CallbackReceiver) -> list[CallbackHint]:
    hints: list[CallbackHint] = []
    receiver.subscribe(hints.append)
    return hints


async def _post(
    http: aiohttp.ClientSession,
    receiver: CallbackReceiver,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with http.post(
        receiver.url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    ) as response:
        return response.status, await response.json()


def _balanced(receiver: CallbackReceiver) -> bool:
    s = receiver.stats
    return s.received == s.accepted + s.rejected_signature + s.rejected_replay + s.malformed


# --- signatures (§10.3) ----------------------------------------------------------------------


async def test_published_test_vector_verifies(
    receiver: CallbackReceiver, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kling's published test vector is accepted and becomes a hint with the body's id/status."""
    # The vector was signed at a fixed past moment; move this module's "now" next to it so the
    # real tolerance check runs (instead of disabling it), for this test only.
    monkeypatch.setattr(_callbacks, "_wall_clock", lambda: VECTOR_TIMESTAMP + 1.0)
    headers = _sign(VECTOR_BODY, msg_id=VECTOR_ID, ts=VECTOR_TIMESTAMP)
    assert headers["webhook-signature"] == VECTOR_SIGNATURE  # the test's own formula is right
    hints = _collect(receiver)
    vector_headers = {
        "Webhook-Id": VECTOR_ID,  # header names are case-insensitive (§10.3)
        "Webhook-Timestamp": str(VECTOR_TIMESTAMP),
        "Webhook-Signature": VECTOR_SIGNATURE,
    }
    status, answer = await _post(http, receiver, VECTOR_BODY, vector_headers)
    assert (status, answer) == (200, {"ok": True})
    assert len(hints) == 1
    hint = hints[0]
    assert (hint.task_id, hint.task_status, hint.external_task_id) == (
        "1234567890",
        "succeeded",
        None,
    )
    assert hint.webhook_id == VECTOR_ID and not hint.duplicate
    assert receiver.stats.accepted == 1 and _balanced(receiver)


async def test_stale_and_future_timestamps_are_refused(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """A correctly signed POST more than 300 s from now (either way) is refused with 401."""
    hints = _collect(receiver)
    vector = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    now = int(time.time())
    assert abs(now - VECTOR_TIMESTAMP) > 300  # the published vector is months old by now
    for headers in (vector, _sign(_legacy(), ts=now - 301), _sign(_legacy(), ts=now + 301)):
        body = VECTOR_BODY if headers is vector else _legacy()
        status, answer = await _post(http, receiver, body, headers)
        assert status == 401 and answer["ok"] is False
    status, _ = await _post(http, receiver, _legacy(), _sign(_legacy(), ts=now - 290))
    assert status == 200
    assert len(hints) == 1 and receiver.stats.rejected_signature == 3


async def test_tolerance_is_configurable(http: aiohttp.ClientSession) -> None:
    """tolerance= sets the allowed clock skew; None disables the timestamp check."""
    old = _sign(_legacy(), ts=int(time.time()) - 60)
    async with CallbackReceiver(secret=SECRET, tolerance=30.0) as strict:
        assert (await _post(http, strict, _legacy(), old))[0] == 401
    async with CallbackReceiver(secret=SECRET, tolerance=None) as lax:
        vector = _sign(VECTOR_BODY, msg_id=VECTOR_ID, ts=VECTOR_TIMESTAMP)
        assert (await _post(http, lax, VECTOR_BODY, vector))[0] == 200


async def test_forged_signatures_are_refused(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """A POST signed with another secret, or with its body altered, gets 401 and no hint."""
    hints = _collect(receiver)
    forged = _sign(_legacy(), secret=OTHER_SECRET)
    tampered = _sign(_legacy(status="failed"))
    for headers in (forged, tampered):
        status, answer = await _post(http, receiver, _legacy(), headers)
        assert (status, answer["ok"]) == (401, False)
    assert hints == [] and receiver.stats.rejected_signature == 2 and receiver.stats.accepted == 0


async def test_missing_or_garbled_headers_are_refused(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """With a secret, a missing or unparsable webhook-* header is a 401, never a 500."""
    hints = _collect(receiver)
    good = _sign(_legacy())
    variants: list[dict[str, str]] = [{}]
    for name in good:
        variants.append({k: v for k, v in good.items() if k != name})
    variants += [
        {**good, "webhook-signature": "garbage"},
        {**good, "webhook-signature": "v1,!!!not-base64!!!"},
        {**good, "webhook-signature": "v2," + good["webhook-signature"][3:]},
        {**good, "webhook-timestamp": "12.5"},
        {**good, "webhook-timestamp": "99999999999999999999"},
    ]
    for headers in variants:
        status, _ = await _post(http, receiver, _legacy(), headers)
        assert status == 401, headers
    assert hints == [] and receiver.stats.rejected_signature == len(variants)
    assert _balanced(receiver)


async def test_rotation_accepts_any_matching_signature(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """Several space-separated signatures (secret rotation, §10.3) pass if one matches."""
    old = _sign(_legacy(), secret=OTHER_SECRET)["webhook-signature"]
    headers = _sign(_legacy())
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert (await _post(http, receiver, _legacy(), headers))[0] == 200


async def test_no_secret_accepts_unsigned_callbacks(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """Without a secret, an unsigned legacy body is accepted and parsed (§10.1)."""
    hints = _collect(open_receiver)
    status, answer = await _post(http, open_receiver, _legacy("t-9", "processing", "shot:1"))
    assert (status, answer) == (200, {"ok": True})
    [hint] = hints
    assert (hint.task_id, hint.task_status, hint.external_task_id) == (
        "t-9",
        "processing",
        "shot:1",
    )
    assert hint.webhook_id is None
    assert abs(hint.received_at - time.monotonic()) < 5.0  # monotonic seconds


async def test_legacy_body_is_parsed_leniently(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """Unknown fields are ignored; an empty or missing external_task_id becomes None."""
    hints = _collect(open_receiver)
    bodies = [
        {"task_id": "a", "task_status": "succeed", "new_field": [1, 2], "task_info": {}},
        {"task_id": "b", "task_status": "failed", "task_info": {"external_task_id": ""}},
        {"task_id": 123456789012345678, "task_status": "submitted", "task_info": None},
    ]
    for body in bodies:
        assert (await _post(http, open_receiver, json.dumps(body).encode()))[0] == 200
    assert [(h.task_id, h.external_task_id) for h in hints] == [
        ("a", None),
        ("b", None),
        ("123456789012345678", None),
    ]


# --- malformed, duplicates, subscribers ------------------------------------------------------


async def test_malformed_bodies_get_400(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """A signed body that is not a callback (not JSON, not an object, no id or status) is a 400."""
    hints = _collect(receiver)
    bodies = [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"task_status": "succeed"}',
        b'{"task_id": "", "task_status": "succeed"}',
        b'{"task_id": "t", "task_status": 5}',
        b'{"id": "t"}',
    ]
    for i, body in enumerate(bodies):
        headers = _sign(body, msg_id=f"m{i}") if body != b"\xff\xfe" else {}
        status, answer = await _post(http, receiver, body, headers)
        expected = 401 if body == b"\xff\xfe" else 400  # unsigned garbage never reaches parsing
        assert (status, answer["ok"]) == (expected, False), body
    assert hints == [] and receiver.stats.malformed == len(bodies) - 1
    assert _balanced(receiver)


async def test_oversized_body_is_refused(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """A body over 1 MiB is refused with 413 and counted as malformed."""
    async with http.post(open_receiver.url, data=io.BytesIO(b"x" * (_callbacks.MAX_BODY + 1))) as r:
        status = r.status
    assert status == 413 and open_receiver.stats.malformed == 1


async def test_duplicates_are_counted_and_passed_on(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """Without a secret, a repeated webhook-id or (task_id, status) counts as a duplicate and is
    still passed on."""
    receiver = open_receiver
    hints = _collect(receiver)
    first = _sign(_legacy(), msg_id="w1")
    await _post(http, receiver, _legacy(), first)
    await _post(http, receiver, _legacy(), first)  # redelivery of the same message
    await _post(http, receiver, _legacy(), _sign(_legacy(), msg_id="w2"))  # same task+status
    await _post(
        http,
        receiver,
        _legacy(status="processing"),
        _sign(_legacy(status="processing"), msg_id="w3"),
    )
    stats = receiver.stats
    assert (stats.accepted, stats.duplicates) == (4, 2)
    assert [h.duplicate for h in hints] == [False, True, True, False]


async def test_replayed_webhook_id_is_refused(
    receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """With a secret, a validly signed POST whose webhook-id was already accepted is refused
    with 401 and never passed on; a new id for the same task and status is a duplicate."""
    hints = _collect(receiver)
    signed = _sign(_legacy(), msg_id="w1")
    assert (await _post(http, receiver, _legacy(), signed))[0] == 200
    status, body = await _post(http, receiver, _legacy(), signed)
    assert status == 401 and body == {"ok": False, "error": "webhook-id already accepted"}
    assert (await _post(http, receiver, _legacy(), _sign(_legacy(), msg_id="w2")))[0] == 200
    stats = receiver.stats
    assert (stats.accepted, stats.rejected_replay, stats.duplicates) == (2, 1, 1)
    assert [(h.webhook_id, h.duplicate) for h in hints] == [("w1", False), ("w2", True)]
    assert _balanced(receiver)


async def test_replay_memory_forgets_ids_outside_the_window(
    receiver: CallbackReceiver, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted webhook ids are forgotten once their timestamp leaves the tolerance window
    (memory stays bounded); a replay after that is refused by the timestamp check instead."""
    now = 1_900_000_000
    monkeypatch.setattr(_callbacks, "_wall_clock", lambda: float(now))
    for i in range(50):
        await _post(
            http,
            receiver,
            _legacy(task_id=f"t-{i}"),
            _sign(_legacy(task_id=f"t-{i}"), msg_id=f"old-{i}", ts=now),
        )
    now += 301  # every id above is now outside the 300 s window
    fresh = _sign(_legacy(task_id="t-new"), msg_id="new", ts=now)
    assert (await _post(http, receiver, _legacy(task_id="t-new"), fresh))[0] == 200
    assert list(receiver._signed_ids) == ["new"]
    stale = _sign(_legacy(task_id="t-0"), msg_id="old-0", ts=now - 301)
    assert (await _post(http, receiver, _legacy(task_id="t-0"), stale))[0] == 401
    stats = receiver.stats
    assert (stats.accepted, stats.rejected_signature, stats.rejected_replay) == (51, 1, 0)


async def test_unsubscribe_stops_delivery(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """After unsubscribe(), the subscriber gets nothing; calling it twice is harmless."""
    hints: list[CallbackHint] = []
    unsubscribe = open_receiver.subscribe(hints.append)
    await _post(http, open_receiver, _legacy("t-1"))
    unsubscribe()
    unsubscribe()
    await _post(http, open_receiver, _legacy("t-2"))
    assert [h.task_id for h in hints] == ["t-1"] and open_receiver.stats.accepted == 2


async def test_subscriber_exception_does_not_break_the_server(
    open_receiver: CallbackReceiver,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising subscriber is logged; the sender still gets 200 and other subscribers run."""

    def boom(hint: CallbackHint) -> None:
        raise RuntimeError("subscriber bug")

    open_receiver.subscribe(boom)
    hints = _collect(open_receiver)
    with caplog.at_level(logging.ERROR, logger="kling_async.callbacks"):
        for task_id in ("t-1", "t-2"):
            assert (await _post(http, open_receiver, _legacy(task_id)))[0] == 200
    assert [h.task_id for h in hints] == ["t-1", "t-2"]
    assert open_receiver.stats.subscriber_errors == 2
    assert "subscriber bug" in caplog.text


# --- url, options, lifecycle -----------------------------------------------------------------


async def test_url_is_public_url_or_the_bound_socket() -> None:
    """url is public_url when given (even before start), else http://127.0.0.1:<port><path>."""
    public = CallbackReceiver(public_url="https://tunnel.example/hook", secret=SECRET)
    assert public.url == "https://tunnel.example/hook"
    local = CallbackReceiver(path="/cb")
    with pytest.raises(RuntimeError, match="start"):
        _ = local.url
    async with local:
        assert local.url == f"http://127.0.0.1:{local.port}/cb" and local.port > 0
    async with public:
        assert public.url == "https://tunnel.example/hook"
    assert "whsec" not in repr(public) and "dGVz" not in repr(public)


def test_bad_options_raise_value_error() -> None:
    """A bad secret, path, public_url, port or tolerance is a ValueError naming the option."""
    for kwargs, name in [
        ({"secret": "whsec_"}, "secret"),
        ({"secret": "whsec_%%%"}, "secret"),
        ({"path": "cb"}, "path"),
        ({"public_url": "tunnel.example"}, "public_url"),
        ({"port": 70000}, "port"),
        ({"tolerance": 0.0}, "tolerance"),
    ]:
        with pytest.raises(ValueError, match=name):
            CallbackReceiver(**kwargs)  # type: ignore[arg-type]


async def test_lifecycle() -> None:
    """start() twice or after aclose() is a RuntimeError; aclose() is idempotent."""
    receiver = CallbackReceiver()
    await receiver.start()
    with pytest.raises(RuntimeError):
        await receiver.start()
    await receiver.aclose()
    await receiver.aclose()
    with pytest.raises(RuntimeError):
        await receiver.start()


async def test_other_methods_and_paths_are_not_counted(
    open_receiver: CallbackReceiver, http: aiohttp.ClientSession
) -> None:
    """Only POSTs to the callback path are handled; a GET or another path is not a callback."""
    async with http.get(open_receiver.url) as response:
        assert response.status == 405
    async with http.post(open_receiver.url + "/other", data=_legacy()) as response:
        assert response.status == 404
    assert open_receiver.stats.received == 0


# --- end to end with the sandbox and the client ----------------------------------------------


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
async def test_callbacks_end_to_end(secret: str | None) -> None:
    """The sandbox's callbacks (signed or not) are accepted, and every outcome arrives."""
    async with (
        Sandbox(api_keys=(API_KEY,), callback_secret=secret, image_duration=(0.05, 0.2)) as sb,
        CallbackReceiver(secret=secret) as receiver,
        ka.KlingClient(
            api_key=API_KEY, base_url=sb.base_url, callbacks=receiver, image_poll_interval=0.2
        ) as client,
    ):
        requests = [ka.OmniImageRequest(prompt=f"p{i}") for i in range(5)]
        with anyio.fail_after(10):
            outcomes = await client.run_all(requests)
        assert all(o.ok for o in outcomes)
        stats = receiver.stats
        assert stats.accepted > 0 and stats.rejected_signature == 0 and stats.malformed == 0
        assert sb.stats().callbacks_failed == 0


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
async def test_callback_beats_a_long_poll_interval(secret: str | None) -> None:
    """With a 5 s poll interval, a 0.1 s task's outcome arrives in well under 5 s (by callback)."""
    async with (
        Sandbox(api_keys=(API_KEY,), callback_secret=secret, image_duration=0.1) as sb,
        CallbackReceiver(secret=secret) as receiver,
        ka.KlingClient(
            api_key=API_KEY, base_url=sb.base_url, callbacks=receiver, image_poll_interval=5.0
        ) as client,
    ):
        started = time.monotonic()
        with anyio.fail_after(10):
            task = await client.submit(ka.OmniImageRequest(prompt="quick"))
            result = await client.wait(task)
        elapsed = time.monotonic() - started
        assert result.status is ka.TaskStatus.SUCCEEDED
        assert elapsed < 1.5, f"{elapsed:.2f} s: the outcome waited for polling"
        assert receiver.stats.accepted >= 1 and receiver.stats.rejected_signature == 0

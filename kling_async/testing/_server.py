"""The sandbox server: an aiohttp application on a real socket, with its lifecycle.

Wire APIs plug in as route sets over one shared :class:`~._engine.Engine`: Kling native
legacy (``_kling.py``), Kling new standard (``_kling_new.py``: ``/omni-video/{model}``,
``/tasks``) and Modellix (``_modellix.py``, under ``/api/v1``). The sandbox's own routes live
under ``/sandbox/`` (result files, stats, task list) and are not API routes: no auth, not counted
as requests. Kling callbacks are signed here (Standard Webhooks, [callbacks]) when a callback
secret is configured.

Sources:
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[auth] https://kling.ai/document-api/api/get-started/authentication
[changelog] https://kling.ai/document-api/updates/api
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[modellix-errors] https://docs.modellix.ai/how-to-use/error-handling
[errors] https://kling.ai/document-api/api/get-started/error-codes
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from aiohttp import web

from ._account import AccountCosts, ResourcePackSpec
from ._engine import MODELLIX_POOL, Duration, Engine
from ._faults import FaultInjector, Faults
from ._kling import URL_LIFETIME, KlingNative
from ._kling_new import KlingNewApi
from ._media import Signer, mp4_bytes, png_bytes, result_size
from ._modellix import API_ROOT, SUBMIT_FORMS, ModellixApi
from ._persist import StateFile
from ._state import RequestWindow, SandboxStats, Status, Task, TaskRecord
from ._webhooks import SECRET_PREFIX as SECRET_PREFIX
from ._webhooks import webhook_key
from ._webhooks import webhook_signature as webhook_signature

DEFAULT_API_KEY: Final = "sandbox-key"
# Largest create body accepted, in bytes. The vendor limit is not documented (INFERRED): room for
# ten 10 MB reference images in base64 [omni-image] or one 200 MB reference video [omni-video].
MAX_BODY: Final = 300 * 1024 * 1024
# Seconds a callback POST may take before it counts as failed.
CALLBACK_TIMEOUT: Final = 10.0
_FILE_NAME = re.compile(r"^(?P<task>[0-9A-Za-z_-]+?)-(?P<index>\d+)(?P<wm>-wm)?\.(?P<ext>png|mp4)$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sandbox:
    """A fake of Kling's native (legacy-standard) HTTP API and of the Modellix API for Kling
    omni models, served by aiohttp on one real port.

    Kling: it validates raw JSON strictly against the reference ([omni-image], [omni-video]),
    enforces
    per-pool concurrency with code 1303 [concurrency], runs task lifecycles on the clock, answers
    queries and list queries ([omni-image], [omni-image], [omni-video]), posts legacy callbacks
    [callbacks], signed
    when ``callback_secret`` is set [callbacks], and serves result files (real PNG / MP4 bytes)
    at signed URLs [omni-image]. The new standard (``_kling_new.py``) is served on the same
    base URL: ``/omni-video/{model}`` creates and the ``/tasks`` queries, API key only.

    Modellix: submit and query routes under :attr:`modellix_base_url`
    (, [auth]) with strict validation of the flat bodies [omni-image], the ``{code, message, data}``
    envelope (–[auth]), a team concurrency limit and a per-key requests-per-window limit
    [omni-image],
    both answered HTTP 429. Both APIs share the clock, the durations, ``fail_rate``, the seeded
    random source, the counters and :attr:`tasks`. It never imports the SDK.

    Use ``async with Sandbox(...) as sb`` or ``await sb.start()`` / ``await sb.aclose()``.

    Args:
        api_keys: Bearer API keys accepted as is [auth], on the Kling and the Modellix
            routes alike. Default ``("sandbox-key",)``.
        access_keys: AccessKey → SecretKey; HS256 JWTs signed with the SecretKey and ``iss`` =
            AccessKey are accepted while valid [auth]. Default none.
        quota: Capacity in slots per pool ``(model_name, kind)`` [concurrency]. Keys ``"image"`` and
            ``"video"`` apply to every model of that kind, ``"<model_name>:<kind>"`` overrides
            one pool. Default image 9, video 5.
        image_duration: Running time of an image task in seconds: a ``(low, high)`` range drawn
            uniformly, or one value. Default ``(2.0, 6.0)``.
        video_duration: Same for video tasks. Default ``(20.0, 60.0)``.
        auto_series_range: ``(low, high)`` range of the image count drawn for
            ``series_amount="auto"`` [concurrency] [omni-image] [changelog]. Default ``(2, 9)``.
        seed: Seed of the sandbox's ``random.Random`` (durations, auto counts, failures, ids).
        path_prefix: Prefix of every route (Kling, Modellix and ``/sandbox/``), e.g.
            ``"/kling"`` to act like a gateway.
        host: Interface to listen on. Default ``"127.0.0.1"``.
        port: TCP port; 0 (default) picks a free one.
        fail_rate: Fraction of tasks, in [0, 1], that end ``failed`` with a ``task_status_msg``.
        modellix_concurrency: Modellix team concurrency, in slots shared by all keys (an image
            task holds ``n`` or ``series_amount`` slots, a video 1). Default 3 [modellix-api].
        modellix_rpm: Modellix API requests (submits and queries) one key may make in any
            ``modellix_rpm_window`` seconds. Default 100 [modellix-api].
        modellix_rpm_window: Length of the sliding request window, in seconds. Default 60.0.
        modellix_submit_paths: Served Modellix submit forms: ``"async"``
            (``/api/v1/kling/{model}/async``) and/or ``"plain"`` (``/api/v1/kling/{model}``);
            the other answers 404 [modellix-api]. Default both.
        faults: Faults to inject on both APIs (errors, drops, malformed and slow answers, slow
            downloads), drawn with a random source seeded from ``seed``. Default none.
        callback_secret: A ``whsec_...`` Standard Webhooks secret; when set, every callback
            POST carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
            headers [callbacks]. Default None: unsigned callbacks.
        state_file: Path of a JSON Lines file that keeps every accepted task (one line per
            create, flushed at once). A sandbox started on an existing file serves the tasks
            an earlier process accepted: queries and lookups answer for them, their slots stay
            held until their original end instants, and their result URLs keep working (the
            URL-signing secret and, when it can be bound again, the port are kept too). This
            lets a campaign run with ``--sandbox`` be killed and resumed. Default None.
        ssl_context: Serve HTTPS with this context (for clients that insist on an
            ``https://`` base URL); :attr:`base_url` then starts with ``https://``. Default
            None: plain HTTP.
        resource_packs: The account's packs, served by ``GET /account/costs``
            (:class:`ResourcePackSpec`; see :attr:`account`). Default: one image and one
            video pack of 10,000 units.
        remaining_delay: Seconds after a task's end before its charge shows in a pack's
            ``remaining_quantity`` (Kling documents up to 12 h). Default 0: at once.

    Raises:
        ValueError: an option is out of range (negative duration, bad quota key, a
            ``modellix_*`` limit below 1 or unknown submit form, a malformed
            ``callback_secret``, ...).
        TypeError: ``api_keys`` or ``modellix_submit_paths`` is a single string.
    """

    def __init__(
        self,
        *,
        api_keys: Collection[str] = (DEFAULT_API_KEY,),
        access_keys: Mapping[str, str] | None = None,
        quota: Mapping[str, int] | None = None,
        image_duration: Duration = (2.0, 6.0),
        video_duration: Duration = (20.0, 60.0),
        auto_series_range: tuple[int, int] = (2, 9),
        seed: int | None = None,
        path_prefix: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        fail_rate: float = 0.0,
        modellix_concurrency: int = 3,
        modellix_rpm: int = 100,
        modellix_rpm_window: float = 60.0,
        modellix_submit_paths: Collection[str] = SUBMIT_FORMS,
        faults: Faults | None = None,
        callback_secret: str | None = None,
        state_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resource_packs: Sequence[ResourcePackSpec] | None = None,
        remaining_delay: float = 0.0,
    ) -> None:
        if isinstance(api_keys, str):
            raise TypeError("api_keys: pass a collection of keys, e.g. ('sk-test',)")
        if isinstance(modellix_submit_paths, str):
            raise TypeError("modellix_submit_paths: pass a collection, e.g. ('plain',)")
        unknown = sorted(set(modellix_submit_paths) - set(SUBMIT_FORMS))
        if unknown:
            raise ValueError(
                f"modellix_submit_paths: {unknown[0]!r} is not one of {', '.join(SUBMIT_FORMS)}"
            )
        for name, value in (
            ("modellix_concurrency", modellix_concurrency),
            ("modellix_rpm", modellix_rpm),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: need an integer >= 1, got {value!r}")
        if not modellix_rpm_window > 0:  # also refuses NaN
            raise ValueError(
                "modellix_rpm_window: need a positive number of seconds, "
                f"got {modellix_rpm_window!r}"
            )
        if callback_secret is not None:
            webhook_key(callback_secret)  # raises ValueError early
        self._callback_secret = callback_secret
        self._engine = Engine.build(
            quota=quota,
            image_duration=image_duration,
            video_duration=video_duration,
            auto_series_range=auto_series_range,
            seed=seed,
            fail_rate=fail_rate,
        )
        self._engine.add_pool(MODELLIX_POOL, modellix_concurrency)
        # One injector for both APIs, with its own stream seeded from ``seed`` so that enabling
        # faults does not change the durations and failures a seed gives.
        self._faults = (
            None
            if faults is None
            else FaultInjector(faults, random.Random(None if seed is None else f"faults:{seed}"))
        )
        prefix = path_prefix.strip().rstrip("/")
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self._prefix = prefix
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._state = None if state_file is None else StateFile.open(state_file)
        if self._state is not None:
            self._engine.restore(self._state.restored(self._engine.offset))
            state = self._state
            self._engine.on_admit = lambda task: state.append(task, self._engine.offset)
        self._signer = Signer(os.urandom(32) if self._state is None else self._state.secret)
        self._api = KlingNative(
            self._engine,
            api_keys=api_keys,
            access_keys=access_keys or {},
            file_url=self._file_url,
            on_created=self._schedule_callbacks,
            faults=self._faults,
        )
        self._window = RequestWindow(modellix_rpm, float(modellix_rpm_window))
        self._modellix = ModellixApi(
            self._engine,
            api_keys=api_keys,
            base_url=lambda: self.base_url,
            file_url=self._signed_url,
            window=self._window,
            submit_forms=modellix_submit_paths,
            faults=self._faults,
        )
        self._new = KlingNewApi(
            self._engine,
            api_keys=api_keys,
            file_url=self._file_url,
            on_created=self._schedule_callbacks,
            faults=self._faults,
        )
        self._account = AccountCosts(
            self._engine,
            packs=resource_packs,
            remaining_delay=remaining_delay,
            authenticate=self._api.authenticate,
            faults=self._faults,
        )
        # Each wire API registers its routes and answers unrouted paths it owns; Kling's native
        # API owns whatever the others do not, so it comes last.
        self._wire_apis = (self._modellix, self._new, self._account, self._api)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._base_url: str | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start serving.

        Raises:
            RuntimeError: already started, or closed.
            OSError: the port cannot be bound.
        """
        if self._runner is not None or self._closed:
            raise RuntimeError("Sandbox.start() may be called once, before aclose()")
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        for api in self._wire_apis:
            app.add_routes(api.routes(self._prefix))
        app.add_routes(
            [
                web.get(self._prefix + "/sandbox/files/{name}", self._serve_file),
                web.get(self._prefix + "/sandbox/stats", self._serve_stats),
                web.get(self._prefix + "/sandbox/tasks", self._serve_tasks),
            ]
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            await self._bind(runner)
        except BaseException:
            await self.aclose()
            raise
        address = runner.addresses[0]
        port = int(address[1])
        host = self._host if self._host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self._ssl is None else "https"
        self._base_url = f"{scheme}://{host}:{port}{self._prefix}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT))
        if self._state is not None:
            self._state.remember_port(port)

    async def _bind(self, runner: web.AppRunner) -> None:
        """Listen on the configured port; with a state file and no port given, on the port the
        earlier process used if it is free (so its result URLs stay valid), else any."""
        remembered = self._state.port if self._state is not None else None
        if self._port == 0 and remembered:
            try:
                await web.TCPSite(runner, self._host, remembered, ssl_context=self._ssl).start()
                return
            except OSError:
                pass  # taken: old URLs will not work, queries still give fresh ones
        await web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl).start()

    async def aclose(self) -> None:
        """Stop serving: cancel pending callbacks, close the callback session and the socket.

        Idempotent.
        """
        self._closed = True
        callbacks, self._callbacks = self._callbacks, set()
        for task in callbacks:
            task.cancel()
        if callbacks:
            await asyncio.gather(*callbacks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._state is not None:
            self._state.close()

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

    # --- public views ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` + ``path_prefix``, no trailing slash (after :meth:`start`).

        Raises:
            RuntimeError: the sandbox is not started.
        """
        if self._base_url is None:
            raise RuntimeError("the sandbox is not started; use 'async with Sandbox()'")
        return self._base_url

    @property
    def modellix_base_url(self) -> str:
        """:attr:`base_url` + ``"/api/v1"``: the Modellix API root [modellix-api], to which a
        client appends ``/kling/{model}/async``, ``/kling/{model}`` or ``/tasks/{task_id}``.

        Raises:
            RuntimeError: the sandbox is not started.
        """
        return self.base_url + API_ROOT

    @property
    def tasks(self) -> list[TaskRecord]:
        """Every accepted task of both APIs, in creation order, as read-only records (status as
        of now; Modellix tasks have ``api="modellix"`` and ``external_task_id=None``)."""
        return self._engine.records()

    @property
    def account(self) -> AccountCosts:
        """The account's resource packs (``account.packs()``, as ``GET /account/costs`` shows
        them) and the arrival times of the queries (``account.query_times``)."""
        return self._account

    def stats(self) -> SandboxStats:
        """A snapshot of counters and per-pool figures (see :class:`SandboxStats`)."""
        return self._engine.stats(
            peak_requests_per_window=self._window.peak,
            faults_injected=None if self._faults is None else self._faults.counts,
        )

    # --- plumbing ----------------------------------------------------------------------------

    def _is_api_path(self, path: str) -> bool:
        return not path.startswith(self._prefix + "/sandbox/")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._is_api_path(request.path):
            return await handler(request)
        self._engine.counters.requests += 1
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            # The first wire API owning the path answers in its own shape (Kling: 1202).
            api = next(a for a in self._wire_apis if a.owns(request.path, self._prefix))
            return api.unrouted(request, exc)

    def _file_url(self, name: str) -> str:
        return self._signed_url(name, int(time.time()) + URL_LIFETIME)

    def _signed_url(self, name: str, expires: int) -> str:
        """The URL of result file ``name``, valid until ``expires`` (epoch seconds)."""
        sign = self._signer.sign(name, expires)
        return f"{self.base_url}/sandbox/files/{name}?expires={expires}&sign={sign}"

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        expires = request.query.get("expires")
        # [omni-image]: anti-hotlinking URLs; a wrong, missing or expired signature is refused
        if not self._signer.check(name, expires, request.query.get("sign")):
            raise web.HTTPForbidden(text="bad or missing signature")
        if expires is None or int(expires) < time.time():
            raise web.HTTPForbidden(text="link expired")
        match = _FILE_NAME.match(name)
        if match is None:
            raise web.HTTPNotFound()
        task = self._engine.task(match["task"])
        if task is None:
            raise web.HTTPNotFound()
        size = result_size(task.kind, task.body)
        if match["ext"] == "mp4":
            body, content_type = mp4_bytes(name, float(task.video_seconds or 5), size), "video/mp4"
        else:
            body, content_type = png_bytes(name, size), "image/png"
        if self._faults is not None:
            return await self._faults.maybe_slow_download(request, body, content_type)
        return web.Response(body=body, content_type=content_type)

    async def _serve_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats().to_json())

    async def _serve_tasks(self, request: web.Request) -> web.Response:
        """Every task (both APIs) without bodies; times are epoch seconds."""
        return web.json_response([record.to_json() for record in self.tasks])

    # --- callbacks [callbacks] ---------------------------------------------------------------

    def _schedule_callbacks(self, task: Task) -> None:
        if task.callback_url is None or self._closed:
            return
        job = asyncio.get_running_loop().create_task(self._deliver_callbacks(task))
        self._callbacks.add(job)
        job.add_done_callback(self._callbacks.discard)

    async def _deliver_callbacks(self, task: Task) -> None:
        """POST the task's standard's body on each status change: processing, then the end."""
        engine = self._engine
        api = self._new if task.api == "kling-new" else self._api
        terminal = Status.FAILED if task.failed else Status.SUCCEED
        for status, at in ((Status.PROCESSING, task.processing_at), (terminal, task.end)):
            await asyncio.sleep(max(0.0, at - engine.now()))
            await self._post_callback(task, api.callback_body(task, status))

    async def _post_callback(self, task: Task, body: dict[str, Any]) -> None:
        session = self._session
        assert session is not None and task.callback_url is not None
        counters = self._engine.counters
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._callback_secret is not None:
            # [callbacks]: Standard Webhooks headers; the timestamp is in seconds
            msg_id = uuid.uuid4().hex
            timestamp = int(time.time())
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = webhook_signature(
                self._callback_secret, msg_id, timestamp, data
            )
        try:
            async with session.post(task.callback_url, data=data, headers=headers) as response:
                delivered = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            delivered = False  # delivery failures are ignored, only counted
        if delivered:
            counters.callbacks_sent += 1
        else:
            counters.callbacks_failed += 1


def serve(
    port: int,
    host: str = "127.0.0.1",
    *,
    hints: Callable[[Sandbox], Iterable[str]] | None = None,
    **sandbox_kwargs: Any,
) -> None:
    """Serve a :class:`Sandbox` on ``host:port`` until SIGINT (Ctrl-C) or SIGTERM (blocking,
    from the main thread; for the CLI).

    Prints its Kling and Modellix base URLs and every credential it accepts (each API key,
    each AccessKey with its SecretKey), then the lines ``hints`` returns, then ``Ctrl-C or
    SIGTERM stops it.``; serves until one of those signals, closes the sandbox and prints
    ``sandbox stopped (SIGTERM)`` (or ``SIGINT``). A second signal while it closes ends the
    process at once with status 128 + the signal. A signal the process was started ignoring
    stays ignored. The earlier signal handlers are back when it returns.

    Args:
        port: TCP port to listen on (0 picks a free one; the printed URL shows it).
        host: Interface to listen on. Default ``"127.0.0.1"``.
        hints: Given the listening sandbox, more lines to print after the credentials (the
            CLI prints commands that use them). Default none.
        **sandbox_kwargs: Any other :class:`Sandbox` option (``api_keys``, ``quota``,
            ``image_duration`` in seconds, ``path_prefix``, ``modellix_concurrency``,
            ``modellix_rpm``, ``faults``, ``callback_secret``, ...).

    Raises:
        OSError: The port cannot be bound.
        ValueError: A :class:`Sandbox` option is out of range.
        TypeError: A :class:`Sandbox` option has the wrong type.
    """
    stop = _StopSignal()
    before = {
        number: signal.getsignal(number)
        for number in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    for number in before:
        # Installed for the whole call (not on the event loop), so no moment is left where a
        # signal would fall through to the default action while the sandbox starts or closes.
        signal.signal(number, stop.handle)
    try:
        asyncio.run(_serve(host, port, hints, stop, sandbox_kwargs))
    finally:
        for number, handler in before.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
    assert stop.signum is not None
    print(f"sandbox stopped ({signal.Signals(stop.signum).name})", flush=True)


async def _serve(
    host: str,
    port: int,
    hints: Callable[[Sandbox], Iterable[str]] | None,
    stop: _StopSignal,
    sandbox_kwargs: dict[str, Any],
) -> None:
    async with Sandbox(host=host, port=port, **sandbox_kwargs) as sandbox:
        keys = sandbox_kwargs.get("api_keys", (DEFAULT_API_KEY,))
        lines = [
            f"Kling API     {sandbox.base_url}",
            f"Modellix API  {sandbox.modellix_base_url}",
            f"API keys      {', '.join(keys) or '(none)'}   (Authorization: Bearer KEY)",
        ]
        lines += [
            f"AccessKey     {access_key}   (HS256 JWT signed with SecretKey {secret_key})"
            for access_key, secret_key in (sandbox_kwargs.get("access_keys") or {}).items()
        ]
        lines += hints(sandbox) if hints is not None else ()
        lines.append("Ctrl-C or SIGTERM stops it.")
        print("\n".join(lines), flush=True)
        await stop.wait()


class _StopSignal:
    """SIGINT / SIGTERM for :func:`serve`: the first wakes the event loop to close the
    sandbox, a second ends the process at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._wake: Callable[[], object] | None = None

    def handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            os.write(2, b"sandbox: stopped at once (second signal)\n")
            os._exit(128 + signum)
        self.signum = signum
        if self._wake is not None:
            self._wake()

    async def wait(self) -> None:
        """Return once a signal arrived (at once if one came before)."""
        loop, event = asyncio.get_running_loop(), asyncio.Event()
        self._wake = lambda: loop.call_soon_threadsafe(event.set)
        if self.signum is not None:
            event.set()
        await event.wait()

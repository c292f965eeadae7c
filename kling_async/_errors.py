"""The exception tree of ``kling_async``.

Every error the SDK raises on purpose, or puts in :attr:`Outcome.error`, derives from
:class:`KlingError`::

    KlingError
    ├── APIError                    the server answered with a non-zero ``code``
    │   ├── AuthenticationError     1000–1004 (HTTP 401)
    │   ├── AccountError            1100–1102, 1304 (HTTP 429, permanent)
    │   ├── PermissionDeniedError   1103 (HTTP 403)
    │   ├── InvalidRequestError     1200–1203 (HTTP 400/404)
    │   ├── ContentPolicyError      1300, 1301 (HTTP 400)
    │   ├── RateLimitError          1302 (HTTP 429, retryable)
    │   │   └── ConcurrencyLimitError   1303 (HTTP 429; the scheduler re-queues it, users
    │   │                               never see it in an Outcome)
    │   └── ServerError             5000–5002 and HTTP 5xx (retryable)
    ├── TransportError              the request did not complete (refused, reset, timed out)
    │   └── RequestTimeoutError     no answer within the per-request timeout
    ├── ResponseFormatError         a 2xx answer that is not the documented JSON shape
    │   └── UnknownStatusError      a task status no documentation names (never polled forever)
    ├── TaskFailedError             the task ended with ``task_status`` ``failed``
    ├── TaskTimeoutError            the per-task deadline passed before the task ended
    ├── DeadlineExceededError       the whole-run deadline passed before the request was created
    ├── BudgetExceededError         the stream's unit budget left no room for the request
    ├── OutcomeUnknownError         a create was sent, its answer was lost, and the wire API has
    │                               no way to look the task up (Modellix): it may exist
    ├── QuotaError                  a request costs more slots than its pool can ever hold
    ├── NotSupportedError           the wire API has no such call (e.g. account costs on
    │                               Modellix); nothing was sent
    ├── EndpointError               every create would fail alike (unreachable, TLS, no such
    │                               path) and none has succeeded: the run stops, nothing sent
    ├── DownloadError               an output could not be saved (``download``)
    ├── JournalError                the journal file cannot be opened, read or written
    ├── JournalConflictError        a journalled request changed since its task was created
    └── InvalidInputError           a local input file breaks a documented rule (also a
                                    ValueError); found when the file is read, before sending

Every message is built through :func:`~kling_async._redact.redact`: a ``Bearer`` token, a
JWT-shaped string or a configured credential that a server echoed back is masked before it can
reach ``str(exc)``, a log record or the console.

Every exception class of the package is defined here, the SDK's tree above and, at the end
of this module, a few internal signals that never reach a caller of the library
(``SetupError``, ``CredentialsRefused`` and ``FolderBusy`` of the command line,
``QuotaStoreUnavailable`` and ``QuotaStoreLost`` of the shared quota); they derive from
``Exception``, not from :class:`KlingError`.

Programmer mistakes raise builtins instead: ``ValueError``/``TypeError`` for an invalid request
(raised when the request model is built, before anything is sent) and ``RuntimeError`` for
lifecycle misuse such as using a closed client.

Error codes and HTTP statuses: https://kling.ai/document-api/get-started/error-codes
[errors]. ``docs/errors.md`` has the same tree with what each error carries and what the
SDK does about it; a test keeps both trees equal to the classes.

Sources:
[errors] https://kling.ai/document-api/api/get-started/error-codes
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[auth] https://kling.ai/document-api/api/get-started/authentication
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ._redact import redact

__all__ = [
    "APIError",
    "AccountError",
    "AuthenticationError",
    "BudgetExceededError",
    "ConcurrencyLimitError",
    "ContentPolicyError",
    "CredentialsRefused",
    "DeadlineExceededError",
    "DownloadError",
    "EndpointError",
    "FolderBusy",
    "InvalidInputError",
    "InvalidRequestError",
    "JournalConflictError",
    "JournalError",
    "KlingError",
    "NotSupportedError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "QuotaError",
    "QuotaStoreLost",
    "QuotaStoreUnavailable",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "ServerError",
    "SetupError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "UnknownStatusError",
    "error_from_code",
]


class KlingError(Exception):
    """Root of every error ``kling_async`` raises on purpose. Text arguments are redacted
    (``Bearer`` tokens, JWTs, configured credentials) when the error is built."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class APIError(KlingError):
    """The server refused a request with a non-zero ``code`` (or an HTTP error status).

    Attributes:
        code: The wire error code (Kling: 1000–5002; Modellix: the HTTP status), or ``None``
            when the body carried none.
        message: The server's ``message`` text.
        request_id: The server's ``request_id`` for support tickets, when given.
        http_status: The HTTP status of the answer.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = redact(request_id) if request_id else request_id
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [f"code={self.code}" if self.code is not None else None]
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        detail = ", ".join(p for p in parts if p)
        return f"{self.message} ({detail})" if detail else self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_api_error,
            (type(self), self.message, self.code, self.request_id, self.http_status),
            self.__dict__,
        )


def _rebuild_api_error(
    cls: type[APIError],
    message: str,
    code: int | None,
    request_id: str | None,
    http_status: int | None,
) -> APIError:
    return cls(message, code=code, request_id=request_id, http_status=http_status)


class AuthenticationError(APIError):
    """The credentials were refused (codes 1000–1004, HTTP 401). Not retried, except that an
    expired JWT (1004) is re-signed once."""


class AccountError(APIError):
    """The account cannot run tasks now: abnormal status (1100), arrears (1101), resource pack
    exhausted or expired (1102), or IP whitelist (1304). Permanent: never retried."""


class PermissionDeniedError(APIError):
    """The account has no permission for this API or model (1103, HTTP 403)."""


class InvalidRequestError(APIError):
    """The server rejected the request's parameters, method or resource (1200–1203)."""


class ContentPolicyError(APIError):
    """The platform or content-safety policy blocked the request (1300, 1301)."""


class RateLimitError(APIError):
    """Too many requests (1302). Retried with backoff.

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``), when given.
    """

    retry_after: float | None = None


class ConcurrencyLimitError(RateLimitError):
    """The pool's concurrency quota is full (1303). The scheduler puts the request back in its
    queue; it never reaches :attr:`Outcome.error`."""


class ServerError(APIError):
    """The server failed (5000 internal error, 5001 unavailable, 5002 internal timeout, or an
    HTTP 5xx). On a create this is *ambiguous*: the task may exist."""


class TransportError(KlingError):
    """The HTTP exchange did not complete: connection refused or reset, DNS failure, or a
    timeout. Wraps the aiohttp exception as ``__cause__``.

    Attributes:
        sent: ``True`` when the request may have reached the server (so a create may exist),
            ``False`` when it certainly did not (connection refused before sending).
        http_status: For a download, the HTTP status of an answer that was not 200; else None.
    """

    def __init__(self, message: str, *, sent: bool = True, http_status: int | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.http_status = http_status


class RequestTimeoutError(TransportError):
    """No answer within the per-request timeout (``KlingClient(request_timeout=...)``)."""


class ResponseFormatError(KlingError):
    """A 2xx answer whose body is not the documented JSON shape (for example no ``task_id``)."""


class UnknownStatusError(ResponseFormatError):
    """The server reports a task status that no documentation names. Not retried: the task
    ends with this error instead of being polled forever.

    Attributes:
        status: The status as the server spelt it.
        task_id: The task's id.
    """

    def __init__(self, status: str, task_id: str) -> None:
        super().__init__(f"task {task_id}: unknown status {status!r}; it is no longer followed")
        self.status = status
        self.task_id = task_id

    def __reduce__(self) -> tuple[object, ...]:
        return (UnknownStatusError, (self.status, self.task_id))


class TaskFailedError(KlingError):
    """The task ended with ``task_status`` ``failed``.

    Attributes:
        task_id: The server's task id.
        external_task_id: The caller's id for the task.
        task_status_msg: The server's failure reason.
    """

    def __init__(
        self,
        task_status_msg: str,
        *,
        task_id: str,
        external_task_id: str | None,
    ) -> None:
        task_status_msg = redact(task_status_msg)
        super().__init__(task_status_msg)
        self.task_status_msg = task_status_msg
        self.task_id = task_id
        self.external_task_id = external_task_id

    def __str__(self) -> str:
        reason = self.task_status_msg or "no reason given"
        return f"task {self.task_id} (external_task_id={self.external_task_id}) failed: {reason}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_task_failed, (self.task_status_msg, self.task_id, self.external_task_id))


def _rebuild_task_failed(msg: str, task_id: str, ext: str | None) -> TaskFailedError:
    return TaskFailedError(msg, task_id=task_id, external_task_id=ext)


class TaskTimeoutError(KlingError):
    """The per-task deadline (``KlingClient(task_timeout=...)``) passed before the task ended.

    The remote task keeps running and keeps its quota slots until the server ends it; the SDK
    keeps tracking it for quota purposes while the client is open.
    """


class DeadlineExceededError(KlingError):
    """The whole-run deadline (``stream(..., deadline=...)``) passed before this request was
    created. Nothing was sent for it: run it again later."""


class BudgetExceededError(KlingError):
    """The stream's unit budget (``stream(..., budget_units=...)``) leaves no room for this
    request: the units spent, the estimates of the tasks in flight and this request's
    estimate would pass it. Nothing was sent for it, nor for any later request of the stream.

    Attributes:
        limit: The budget, in units.
        spent: Units charged to the stream's ended tasks when the budget was reached.
    """

    def __init__(self, message: str, *, limit: Decimal, spent: Decimal) -> None:
        super().__init__(message)
        self.limit = limit
        self.spent = spent

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_budget_exceeded, (str(self), self.limit, self.spent))


def _rebuild_budget_exceeded(message: str, limit: Decimal, spent: Decimal) -> BudgetExceededError:
    return BudgetExceededError(message, limit=limit, spent=spent)


class OutcomeUnknownError(KlingError):
    """A create was sent, but its answer was lost (timeout after sending, 5xx, dropped
    connection, or a 2xx without a task id), and the wire API has no way to look the task up
    by a client-chosen id (Modellix, [modellix-api]–[auth]). The task may exist, may
    run and may be billed. The SDK never re-sends such a create: check the provider's console
    before running the request again.

    Attributes:
        provider: The wire API, e.g. ``"modellix"``.
        external_task_id: The client-side key of the request (journal key), if any.
        task_id: The task id, when the answer carried one but could not be used; else ``None``.
        http_status: The HTTP status of the lost answer, if one arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        external_task_id: str | None = None,
        task_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.external_task_id = external_task_id
        self.task_id = task_id
        self.http_status = http_status

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_outcome_unknown,
            (str(self), self.provider, self.external_task_id, self.task_id, self.http_status),
        )


def _rebuild_outcome_unknown(
    message: str, provider: str, ext: str | None, task_id: str | None, status: int | None
) -> OutcomeUnknownError:
    return OutcomeUnknownError(
        message, provider=provider, external_task_id=ext, task_id=task_id, http_status=status
    )


class QuotaError(KlingError):
    """A request costs more quota slots than its pool's capacity, so it could never start.

    Example: ``n=9`` on a pool configured with ``Quota(image=5)``.
    """


class EndpointError(KlingError):
    """Every create would fail the same way, and none has succeeded yet: the API cannot be
    reached at its base URL (connection refused, DNS failure, TLS certificate not trusted), or
    it answers that the create path does not exist there (HTTP 404 or 405 without Kling's
    envelope, or code 1202 "invalid method": a wrong base URL or gateway prefix). Raised by
    :meth:`KlingClient.stream` (and the verbs built on it) instead of failing each request in
    turn; nothing was created, so a corrected re-run can do every request.

    Once one create has succeeded, the same failures are ordinary per-request errors (retried
    where they prove nothing was created), since the address was right.

    Attributes:
        base_url: The API root that failed.
    """

    def __init__(self, message: str, *, base_url: str) -> None:
        super().__init__(message)
        self.base_url = base_url

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_endpoint, (str(self), self.base_url))


def _rebuild_endpoint(message: str, base_url: str) -> EndpointError:
    return EndpointError(message, base_url=base_url)


class NotSupportedError(KlingError):
    """The client's wire API has no call for what was asked, so nothing was sent.

    Example: :meth:`KlingClient.account_costs` with ``provider="modellix"``: Modellix
    documents no resource-pack query (https://docs.modellix.ai/ways-to-use/api). The message
    names the wire API and the call.
    """


class DownloadError(KlingError):
    """An output could not be saved: bad URL scheme, HTTP failure, size cap, or a
    ``Content-Type`` that does not match the expected kind."""


class JournalError(KlingError):
    """The journal file cannot be opened, read or written (wraps the ``sqlite3`` error)."""


class JournalConflictError(KlingError):
    """A request's ``external_task_id`` is in the journal with different content: the request
    changed since its task was created. Nothing is sent; give the changed request a new
    ``external_task_id``."""


_CODE_CLASSES: tuple[tuple[range, type[APIError]], ...] = (
    (range(1000, 1100), AuthenticationError),
    (range(1100, 1103), AccountError),
    (range(1103, 1104), PermissionDeniedError),
    (range(1200, 1300), InvalidRequestError),
    (range(1300, 1302), ContentPolicyError),
    (range(1302, 1303), RateLimitError),
    (range(1303, 1304), ConcurrencyLimitError),
    (range(1304, 1305), AccountError),
    (range(5000, 6000), ServerError),
)

_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: AccountError,
    403: PermissionDeniedError,
    404: InvalidRequestError,
    405: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def error_from_code(
    message: str,
    *,
    code: int | None,
    http_status: int | None,
    request_id: str | None = None,
) -> APIError:
    """Build the most specific :class:`APIError` for a wire ``code`` and HTTP status.

    Kling codes [errors] win over the HTTP status; without a known code the HTTP status
    decides (5xx → :class:`ServerError`).
    """
    cls: type[APIError] = APIError
    if code is not None:
        for codes, klass in _CODE_CLASSES:
            if code in codes:
                cls = klass
                break
        else:
            code_as_status = code if 400 <= code < 600 else None
            cls = _class_for_status(code_as_status or http_status)
    else:
        cls = _class_for_status(http_status)
    return cls(message, code=code, request_id=request_id, http_status=http_status)


def _class_for_status(status: int | None) -> type[APIError]:
    if status is None:
        return APIError
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIError)


class InvalidInputError(KlingError, ValueError):
    """A request breaks a documented rule of the wire API it goes to (``KlingClient.check``,
    before sending; see ``docs/validation.md``), or a local input (reference image or video
    file) does: wrong format, too large, too small, bad aspect ratio, or unreadable (found when
    the SDK reads the file). Either way before any HTTP request for that task. Also a
    ``ValueError``; the message names the field (and the file) and the rule.
    """


# -- internal signals -------------------------------------------------------------------------
# Raised and caught inside the SDK or its command line; none reaches a caller of the library.


class QuotaStoreUnavailable(Exception):
    """The shared quota's Redis did not answer (``RedisQuotaBackend`` grants nothing then)."""


class QuotaStoreLost(Exception):
    """The shared quota's Redis lost its state (restarted empty): re-register before going on."""


class SetupError(Exception):
    """Something to fix before a command-line run (or the sandbox) can start; the command line
    shows it as one line and exits with status 2."""


class CredentialsRefused(Exception):
    """The API refused the credentials (codes 1000–1004, or Modellix 401): nothing can run."""


class FolderBusy(Exception):
    """Another process holds the run folder's lock.

    Attributes:
        pid: The holder's process id as it wrote it, or ``None`` when unreadable.
    """

    def __init__(self, folder: Path, pid: int | None) -> None:
        holder = f"PID {pid}" if pid is not None else "a process whose PID is unknown"
        super().__init__(
            f"--out {folder}: another kling-async run ({holder}) is using this folder; "
            "wait for it to end, or choose another --out"
        )
        self.pid = pid

"""The exception tree: code → class mapping (reference §8), messages and pickling."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

import kling_async as ka
from kling_async._errors import error_from_code

# (HTTP status, code, class) — the table of reference §8.
CODE_TABLE: list[tuple[int, int, type[ka.APIError]]] = [
    (401, 1000, ka.AuthenticationError),
    (401, 1001, ka.AuthenticationError),
    (401, 1002, ka.AuthenticationError),
    (401, 1003, ka.AuthenticationError),
    (401, 1004, ka.AuthenticationError),
    (429, 1100, ka.AccountError),
    (429, 1101, ka.AccountError),
    (429, 1102, ka.AccountError),
    (403, 1103, ka.PermissionDeniedError),
    (400, 1200, ka.InvalidRequestError),
    (400, 1201, ka.InvalidRequestError),
    (404, 1202, ka.InvalidRequestError),
    (404, 1203, ka.InvalidRequestError),
    (400, 1300, ka.ContentPolicyError),
    (400, 1301, ka.ContentPolicyError),
    (429, 1302, ka.RateLimitError),
    (429, 1303, ka.ConcurrencyLimitError),
    (429, 1304, ka.AccountError),
    (500, 5000, ka.ServerError),
    (503, 5001, ka.ServerError),
    (504, 5002, ka.ServerError),
]


@pytest.mark.parametrize(
    ("status", "code", "cls"), CODE_TABLE, ids=[str(c) for _, c, _ in CODE_TABLE]
)
def test_every_documented_code_maps_to_its_class(
    status: int, code: int, cls: type[ka.APIError]
) -> None:
    """Each §8 code, with its documented HTTP status, builds exactly the documented class."""
    error = error_from_code("server says no", code=code, http_status=status, request_id="r-1")
    assert type(error) is cls
    assert isinstance(error, ka.APIError)
    assert isinstance(error, ka.KlingError)
    assert (error.code, error.http_status, error.request_id) == (code, status, "r-1")
    assert error.message == "server says no"


@pytest.mark.parametrize("status", [200, 400, 500])
def test_code_wins_over_http_status(status: int) -> None:
    """A known code decides the class whatever the HTTP status (e.g. 1303 inside HTTP 200)."""
    error = error_from_code("busy", code=1303, http_status=status)
    assert type(error) is ka.ConcurrencyLimitError


def test_1102_inside_429_is_a_permanent_account_error_not_a_rate_limit() -> None:
    """HTTP 429 with 1102 (pack exhausted) is an AccountError, not a retryable RateLimitError."""
    error = error_from_code("Account balance not enough", code=1102, http_status=429)
    assert isinstance(error, ka.AccountError)
    assert not isinstance(error, ka.RateLimitError)


def test_concurrency_limit_is_a_rate_limit() -> None:
    """ConcurrencyLimitError (1303) is a RateLimitError, so retry logic catches both."""
    assert issubclass(ka.ConcurrencyLimitError, ka.RateLimitError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ka.InvalidRequestError),
        (401, ka.AuthenticationError),
        (402, ka.AccountError),
        (403, ka.PermissionDeniedError),
        (404, ka.InvalidRequestError),
        (405, ka.InvalidRequestError),
        (422, ka.InvalidRequestError),
        (429, ka.RateLimitError),
        (500, ka.ServerError),
        (502, ka.ServerError),
        (503, ka.ServerError),
        (504, ka.ServerError),
        (418, ka.APIError),
        (None, ka.APIError),
    ],
)
def test_http_status_decides_without_a_code(status: int | None, cls: type[ka.APIError]) -> None:
    """Without a wire code the HTTP status picks the class; 5xx is ServerError."""
    error = error_from_code("HTTP error", code=None, http_status=status)
    assert type(error) is cls
    assert error.code is None


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        (9999, 503, ka.ServerError),  # unknown code: HTTP status decides
        (1999, 400, ka.InvalidRequestError),
        (9999, None, ka.APIError),
        (429, 200, ka.RateLimitError),  # a gateway code that is an HTTP status
        (502, 200, ka.ServerError),
        (1050, 401, ka.AuthenticationError),  # inside the 1000–1099 auth block
        (5003, 500, ka.ServerError),  # inside the 5000 block
    ],
)
def test_unknown_codes_fall_back(code: int, status: int | None, cls: type[ka.APIError]) -> None:
    """Codes outside §8 fall back to their block, an HTTP-status-like code, or the HTTP status."""
    assert type(error_from_code("x", code=code, http_status=status)) is cls


def test_api_error_str_shows_code_status_and_request_id() -> None:
    """str() of an API error shows the message, code, HTTP status and request id."""
    error = error_from_code(
        "parallel task over resource pack limit", code=1303, http_status=429, request_id="abc-123"
    )
    assert str(error) == (
        "parallel task over resource pack limit (code=1303, http_status=429, request_id=abc-123)"
    )


def test_api_error_str_omits_missing_parts() -> None:
    """Missing code/status/request id are left out of str(); none at all gives the message."""
    assert str(ka.ServerError("HTTP 502: bad gateway", http_status=502)) == (
        "HTTP 502: bad gateway (http_status=502)"
    )
    assert str(ka.APIError("plain")) == "plain"


def _samples() -> list[ka.KlingError]:
    """At least one instance of every exported error class, attributes filled in."""
    return [
        *(
            cls("m", code=code, http_status=status, request_id="rid")
            for status, code, cls in CODE_TABLE
        ),
        ka.APIError("no code"),
        ka.TransportError("connect refused", sent=False),
        ka.RequestTimeoutError("slow", http_status=None),
        ka.ResponseFormatError("not json"),
        ka.UnknownStatusError("paused", "t-9"),
        ka.TaskFailedError("content violation", task_id="t-1", external_task_id="e-1"),
        ka.TaskTimeoutError("deadline"),
        ka.DeadlineExceededError("run deadline"),
        ka.BudgetExceededError("over budget", limit=Decimal("50"), spent=Decimal("48.5")),
        ka.OutcomeUnknownError(
            "lost", provider="modellix", external_task_id="e-2", task_id=None, http_status=502
        ),
        ka.QuotaError("too big"),
        ka.NotSupportedError("modellix has no account costs"),
        ka.EndpointError("cannot reach the API", base_url="https://h/kling"),
        ka.DownloadError("404 for https://cdn/x.png"),
        ka.JournalError("cannot open journal.sqlite"),
        ka.JournalConflictError("request 3 changed"),
        ka.InvalidInputError("image_list[0]: 'x.gif', must be a .jpg, .jpeg or .png file"),
        ka.KlingError("root"),
    ]


EXPORTED_ERRORS = sorted(
    (
        obj
        for obj in (getattr(ka, name) for name in ka.__all__)
        if isinstance(obj, type) and issubclass(obj, ka.KlingError)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda cls: cls.__name__)
def test_exceptions_survive_a_pickle_round_trip(cls: type[ka.KlingError]) -> None:
    """Every exported SDK exception pickles and unpickles to the same class, str() and
    attributes (a new error class without a sample here fails)."""
    samples = [error for error in _samples() if type(error) is cls]
    assert samples, f"no sample of {cls.__name__} in _samples(): add one"
    for error in samples:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)


def test_rate_limit_retry_after_survives_pickling() -> None:
    """A rate-limit error keeps retry_after through a pickle round trip."""
    error = error_from_code("busy", code=1303, http_status=429)
    assert isinstance(error, ka.ConcurrencyLimitError)
    error.retry_after = 2.5
    assert pickle.loads(pickle.dumps(error)).retry_after == 2.5


def test_task_failed_error_str_shows_task_and_reason() -> None:
    """str(TaskFailedError) names the task id, the external id and the server's reason."""
    error = ka.TaskFailedError("content violation", task_id="t-1", external_task_id="job-7")
    assert str(error) == "task t-1 (external_task_id=job-7) failed: content violation"
    assert (error.task_id, error.external_task_id, error.task_status_msg) == (
        "t-1",
        "job-7",
        "content violation",
    )


def test_task_failed_error_without_reason() -> None:
    """An empty failure reason shows as 'no reason given'."""
    error = ka.TaskFailedError("", task_id="t-2", external_task_id=None)
    assert str(error) == "task t-2 (external_task_id=None) failed: no reason given"


def test_invalid_input_error_is_a_value_error() -> None:
    """InvalidInputError is both a KlingError and a ValueError."""
    assert issubclass(ka.InvalidInputError, ka.KlingError)
    assert issubclass(ka.InvalidInputError, ValueError)


def test_transport_error_sent_flag() -> None:
    """TransportError.sent defaults to True (a create may exist); False is kept."""
    assert ka.TransportError("reset").sent is True
    assert ka.TransportError("refused", sent=False).sent is False
    assert issubclass(ka.RequestTimeoutError, ka.TransportError)


@pytest.mark.parametrize(
    "cls",
    [
        ka.APIError,
        ka.TransportError,
        ka.ResponseFormatError,
        ka.TaskFailedError,
        ka.TaskTimeoutError,
        ka.QuotaError,
        ka.InvalidInputError,
        ka.DownloadError,
        ka.JournalError,
        ka.JournalConflictError,
    ],
)
def test_every_error_derives_from_kling_error(cls: type[Exception]) -> None:
    """Every exported error class can be caught as KlingError."""
    assert issubclass(cls, ka.KlingError)

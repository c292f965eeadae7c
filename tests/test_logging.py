"""Log records under the ``kling_async`` logger tree: what they say, and that no secret (API key,
SecretKey, signed JWT) ever appears in one."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

import kling_async as ka
from kling_async._redact import LOGGERS
from kling_async.testing import Sandbox

from .hostile_kling import hostile_kling

pytestmark = pytest.mark.anyio

API_KEY = "log-test-api-key-0123456789abcdef"
ACCESS_KEY, SECRET_KEY = "log-test-ak", "log-test-secret-key-0123456789abcdef"


@pytest.mark.parametrize("auth", ["api_key", "ak/sk"])
async def test_task_events_and_http_requests_are_logged_without_secrets(
    auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    """INFO tells created / ended, DEBUG each HTTP request with status, duration and request
    id and each poll; no record's text holds a credential or a JWT."""
    credentials = (
        {"api_key": API_KEY}
        if auth == "api_key"
        else {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    )
    caplog.set_level(logging.DEBUG, logger="kling_async")
    async with (
        Sandbox(
            api_keys=(API_KEY,),
            access_keys={ACCESS_KEY: SECRET_KEY},
            quota={"image": 2},
            image_duration=(0.05, 0.15),
            seed=3,
        ) as sb,
        ka.KlingClient(
            base_url=sb.base_url, quota=ka.Quota(image=2), image_poll_interval=0.05, **credentials
        ) as client,
    ):
        requests = [
            ka.OmniImageRequest(prompt=f"shot {i}", n=2, aspect_ratio="1:1") for i in range(3)
        ]
        outcomes = await client.run_all(requests)
    assert all(o.ok for o in outcomes)
    by_logger: dict[str, list[str]] = {}
    for record in caplog.records:
        by_logger.setdefault(record.name, []).append(record.getMessage())
    client_lines = " | ".join(by_logger["kling_async.client"])
    assert client_lines.count(" created ") == 3 and client_lines.count(" ended: succeeded") == 3
    assert any(m.startswith("poll: ") for m in by_logger["kling_async.client"])
    http = by_logger["kling_async.http"]
    assert any(m.startswith("POST /v1/images/omni-image -> 200 in ") for m in http)
    assert all("request_id " in m for m in http)
    # A full pool: the third create waited or was refused and re-queued; either way no secret.
    text = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    for secret in (API_KEY, SECRET_KEY, "eyJ"):
        assert secret not in text


async def test_server_text_in_library_records_is_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """A task_status_msg holding an ANSI escape, CR/LF and a bidi override reaches an
    application's own handler escaped, on one line, in the library's "task ended" record."""
    caplog.set_level(logging.INFO, logger="kling_async")
    message = "boom\x1b[2K\r\nINFO kling_async.client: task x ended: succeeded \u202e"
    async with (
        hostile_kling(task_status_msg=message) as server,
        ka.KlingClient(api_key=API_KEY, base_url=server.base_url) as client,
    ):
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x")])
    assert isinstance(outcome.error, ka.TaskFailedError)
    ended = [r.getMessage() for r in caplog.records if " ended: " in r.getMessage()]
    assert len(ended) == 1
    assert "boom\\x1b[2K\\r\\nINFO kling_async.client: task x ended: succeeded \\u202e" in ended[0]
    assert not any(c in caplog.text for c in "\x1b\r\u202e")


def test_every_library_logger_escapes_its_records() -> None:
    """Each logger the package's modules use carries the filter that escapes server text."""
    package = Path(ka.__file__).parent
    names = set()
    for path in package.rglob("*.py"):
        names |= set(re.findall(r'getLogger\("(kling_async\.[a-z_.]+)"\)', path.read_text()))
    assert names and names <= set(LOGGERS)

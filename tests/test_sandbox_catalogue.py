"""The sandbox's Modellix catalogue and key check, which Modellix's own CLI calls first:
``GET /api/v1/models`` and ``GET /api/v1/apikey/validate``."""

from __future__ import annotations

import aiohttp
import pytest

from kling_async.testing import Sandbox

pytestmark = pytest.mark.anyio

KEY = "catalogue-key"


async def test_models_lists_the_kling_omni_models() -> None:
    """The catalogue is a top-level ``models`` list with slug, type and docs_url; it needs a key."""
    async with Sandbox(api_keys=(KEY,)) as sb, aiohttp.ClientSession() as http:
        url = sb.modellix_base_url + "/models"
        async with http.get(url, headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with http.get(url) as refused:
            assert refused.status == 401
    slugs = {m["slug"]: m["type"] for m in body["models"]}
    assert slugs == {
        "kling/kling-v3-omni-image": "image",
        "kling/kling-image-o1": "image",
        "kling/kling-v3-omni-video": "video",
        "kling/kling-video-o1": "video",
    }
    assert all(m["docs_url"].startswith("https://docs.modellix.ai/kling/") for m in body["models"])


@pytest.mark.parametrize(("key", "valid"), [(KEY, True), ("someone-else", False)])
async def test_apikey_validate_answers_200_with_is_valid(key: str, valid: bool) -> None:
    """The key check answers HTTP 200 with data.is_valid, also for a key it does not know."""
    async with Sandbox(api_keys=(KEY,)) as sb, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {key}"}
        async with http.get(sb.modellix_base_url + "/apikey/validate", headers=headers) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body == {"code": 0, "message": "success", "data": {"is_valid": valid}}


async def test_https_for_clients_that_insist_on_it() -> None:
    """With ssl_context the sandbox serves HTTPS (Kling's and Modellix's routes alike), for
    third-party clients that refuse a plain-HTTP base URL."""
    import ssl

    import trustme

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with (
        Sandbox(api_keys=(KEY,), ssl_context=server) as sb,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http,
    ):
        assert sb.base_url.startswith("https://127.0.0.1:")
        headers = {"Authorization": f"Bearer {KEY}"}
        async with http.get(sb.modellix_base_url + "/apikey/validate", headers=headers) as resp:
            assert (await resp.json())["data"]["is_valid"] is True
        async with http.get(sb.base_url + "/v1/images/omni-image/nope", headers=headers) as resp:
            assert (await resp.json())["code"] == 1203  # an unknown task, over TLS

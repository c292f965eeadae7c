"""A sandbox of Kling's native HTTP API and of the Modellix API, for tests, benchmarks and
offline runs.

``Sandbox`` is a real aiohttp server on a local port. It speaks Kling's legacy-standard omni API
as the vendors document it: strict request validation (codes 1201/1200), authentication by API
key or HS256 JWT (1001–1004), per-pool concurrency with 1303, task lifecycles on the clock, list
queries, lookup by ``external_task_id``, callbacks (optionally signed, Standard Webhooks) and
signed result files (real PNG/MP4 bytes). It also speaks Kling's new-standard omni-video API
(``POST /omni-video/kling-3.0-omni`` and ``/omni-video/kling-o1`` with ``contents`` /
``settings`` / ``options``, API key only) with the unified ``GET /tasks`` batch query and
``POST /tasks`` cursor listing, its tasks sharing the legacy models' pools. On the same port,
under ``/api/v1``, it speaks the Modellix API for the Kling omni models: flat bodies, the
``{code, message, data}`` envelope, a team concurrency limit and a per-key requests-per-minute
limit (both HTTP 429). ``GET /account/costs`` lists the account's resource packs
(``ResourcePackSpec``; by default one image and one video pack), whose remaining units go down
by what each succeeded task was charged: Kling's published prices. ``Faults`` injects errors,
dropped connections, malformed and slow answers on all of them. It is written from the docs,
never from the SDK, so an encoding bug in the SDK is caught.

Example::

    from kling_async.testing import Sandbox

    async with Sandbox(api_keys=("test",), image_duration=(0.05, 0.2)) as sb:
        ...  # point a client at sb.base_url (Kling) or sb.modellix_base_url with key "test"
        print(sb.stats())
"""

from ._account import AccountCosts as AccountCosts
from ._account import ResourcePackSpec as ResourcePackSpec
from ._faults import Faults as Faults
from ._server import Sandbox as Sandbox
from ._server import serve as serve
from ._state import PoolStats as PoolStats
from ._state import SandboxPoolStats as SandboxPoolStats
from ._state import SandboxStats as SandboxStats
from ._state import TaskRecord as TaskRecord

__all__ = [
    "AccountCosts",
    "Faults",
    "PoolStats",
    "ResourcePackSpec",
    "Sandbox",
    "SandboxPoolStats",
    "SandboxStats",
    "TaskRecord",
    "serve",
]

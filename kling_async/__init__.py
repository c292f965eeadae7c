"""kling_async: an asyncio-first SDK for Kling's omni image and video generation.

Submit many omni-image and omni-video tasks under the account's concurrency quota and receive
each result the moment its task ends::

    import kling_async as ka

    async with ka.KlingClient(api_key="...") as client:
        async with client.stream(requests) as outcomes:
            async for outcome in outcomes:
                print(outcome.index, outcome.ok, outcome.result)
"""

from ._account import ResourcePack as ResourcePack
from ._account import ResourcePackStatus as ResourcePackStatus
from ._client import KlingClient as KlingClient
from ._engine._progress import Progress as Progress
from ._engine._stats import ClientStats as ClientStats
from ._engine._stats import PoolStats as PoolStats
from ._errors import AccountError as AccountError
from ._errors import APIError as APIError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BudgetExceededError as BudgetExceededError
from ._errors import ConcurrencyLimitError as ConcurrencyLimitError
from ._errors import ContentPolicyError as ContentPolicyError
from ._errors import DeadlineExceededError as DeadlineExceededError
from ._errors import DownloadError as DownloadError
from ._errors import EndpointError as EndpointError
from ._errors import InvalidInputError as InvalidInputError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import JournalConflictError as JournalConflictError
from ._errors import JournalError as JournalError
from ._errors import KlingError as KlingError
from ._errors import NotSupportedError as NotSupportedError
from ._errors import OutcomeUnknownError as OutcomeUnknownError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import QuotaError as QuotaError
from ._errors import RateLimitError as RateLimitError
from ._errors import RequestTimeoutError as RequestTimeoutError
from ._errors import ResponseFormatError as ResponseFormatError
from ._errors import ServerError as ServerError
from ._errors import TaskFailedError as TaskFailedError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import TransportError as TransportError
from ._errors import UnknownStatusError as UnknownStatusError
from ._http._callbacks import CallbackHint as CallbackHint
from ._http._callbacks import CallbackReceiver as CallbackReceiver
from ._http._callbacks import ReceiverStats as ReceiverStats
from ._http._download import SavedFile as SavedFile
from ._http._retry import Retry as Retry
from ._journal import Journal as Journal
from ._journal import JournalEntry as JournalEntry
from ._models import GeneratedImage as GeneratedImage
from ._models import GeneratedVideo as GeneratedVideo
from ._models import MultiPrompt as MultiPrompt
from ._models import OmniImageRequest as OmniImageRequest
from ._models import OmniVideoRequest as OmniVideoRequest
from ._models import Outcome as Outcome
from ._models import ReferenceVideo as ReferenceVideo
from ._models import Request as Request
from ._models import Task as Task
from ._models import TaskResult as TaskResult
from ._models import TaskStatus as TaskStatus
from ._models import VideoImage as VideoImage
from ._queue._redis_campaign import RedisCampaign as RedisCampaign
from ._queue._store import PushReport as PushReport
from ._queue._store import QueuedLine as QueuedLine
from ._queue._store import QueueStatus as QueueStatus
from ._queue._store import WorkerInfo as WorkerInfo

# Lease, LocalQuota, PoolSnapshot, QuotaBackend, QuotaContext: deprecated here (kept for one
# release, see CHANGELOG); their home is kling_async.quota.
from .quota import Lease as Lease
from .quota import LocalQuota as LocalQuota
from .quota import PoolSnapshot as PoolSnapshot
from .quota import Quota as Quota
from .quota import QuotaBackend as QuotaBackend
from .quota import QuotaContext as QuotaContext
from .quota import RedisQuotaBackend as RedisQuotaBackend

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AccountError",
    "AuthenticationError",
    "BudgetExceededError",
    "CallbackHint",
    "CallbackReceiver",
    "ClientStats",
    "ConcurrencyLimitError",
    "ContentPolicyError",
    "DeadlineExceededError",
    "DownloadError",
    "EndpointError",
    "GeneratedImage",
    "GeneratedVideo",
    "InvalidInputError",
    "InvalidRequestError",
    "Journal",
    "JournalConflictError",
    "JournalEntry",
    "JournalError",
    "KlingClient",
    "KlingError",
    "Lease",
    "LocalQuota",
    "MultiPrompt",
    "NotSupportedError",
    "OmniImageRequest",
    "OmniVideoRequest",
    "Outcome",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PoolSnapshot",
    "PoolStats",
    "Progress",
    "PushReport",
    "QueueStatus",
    "QueuedLine",
    "Quota",
    "QuotaBackend",
    "QuotaContext",
    "QuotaError",
    "RateLimitError",
    "ReceiverStats",
    "RedisCampaign",
    "RedisQuotaBackend",
    "ReferenceVideo",
    "Request",
    "RequestTimeoutError",
    "ResourcePack",
    "ResourcePackStatus",
    "ResponseFormatError",
    "Retry",
    "SavedFile",
    "ServerError",
    "Task",
    "TaskFailedError",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TransportError",
    "UnknownStatusError",
    "VideoImage",
    "WorkerInfo",
]

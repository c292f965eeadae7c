"""``Quota``: the concurrency slots a client may hold, per pool (model × image/video) and for
a Modellix team (https://kling.ai/document-api/api/get-started/concurrency-rules).

Sources:
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[modellix-cli] https://docs.modellix.ai/ways-to-use/cli
[modellix-api] https://docs.modellix.ai/ways-to-use/api
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import attrs

from .._models import Kind

__all__ = ["Quota"]


def _pools(value: Mapping[str, int] | None) -> Mapping[str, int]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class Quota:
    """The account's concurrency quota, in slots per pool [concurrency].

    Kling counts concurrency per account × model version × pack type (image/video). An image
    task holds ``n`` slots, a fixed series ``series_amount``, an ``auto`` series the number of
    images it produces, a video 1, from creation until the task ends.

    Args:
        image: Slots of every image pool (one per model version). Default 9.
        video: Slots of every video pool. Default 5.
        pools: Per-pool overrides keyed ``"<model_name>:<kind>"``, e.g.
            ``{"kling-image-o1:image": 5}``.
        hol_patience: Head-of-line policy: how long, in seconds, the oldest waiting request
            may be overtaken, or ``"auto"`` (default): 30 of the pool's mean task durations
            (an exponentially weighted mean of the tasks seen to end; 300 s until one has),
            10 minutes for image tasks of 20 s. The oldest waiting request starts first
            when it fits. When it does not, later requests that fit may overtake it (the
            largest first), but only until it has waited this long; after that nothing
            overtakes it unless it is expected to end before enough slots free up for the
            oldest, or fits in the slots that will be spare then (backfilling, judged from the
            pool's observed task durations); the oldest is not protected while it costs more
            than the slots that other programs sharing the account are suspected to leave
            (holding slots back could not start it). ``0`` protects the
            oldest at once; ``None`` never protects anyone (a large request may then
            starve). A patience that is short against the task durations costs utilisation:
            each protection holds slots empty until the oldest fits (about 2 % less at 15
            mean durations than at 30, and 30 as good as 60; ``benchmarks/README.md``).
        auto_series_estimate: Slots first reserved for an ``auto`` series (2–9, default 9, the
            maximum). Once an ``auto`` series has finished, the reservation follows the counts
            observed (their rounded-up mean), also for requests already waiting. Reserving
            too few is safe: the server answers 1303 and the request waits for room.
        team: Modellix only: the team's concurrent-task limit, one pool for every model and
            kind ("typically 3", [modellix-api] [modellix-cli]). Image tasks are counted as on
            Kling (``n``, ``series_amount``, the ``auto`` count), a video as 1; a request
            costing more than the whole limit runs alone, taking every slot (INFERRED: how
            Modellix counts a multi-image task is not documented). Default 3.

    Raises:
        ValueError: A capacity below 1, or an estimate outside 2–9.
    """

    image: int = 9
    video: int = 5
    pools: Mapping[str, int] = attrs.field(factory=dict, converter=_pools)
    hol_patience: float | Literal["auto"] | None = "auto"
    auto_series_estimate: int = 9
    team: int = 3

    def __attrs_post_init__(self) -> None:
        named = (("image", self.image), ("video", self.video), ("team", self.team))
        for name, value in (*named, *self.pools.items()):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Quota.{name}: {value!r}, capacity must be an integer ≥ 1")
        for key in self.pools:
            model, _, kind = key.partition(":")
            if not model or kind not in ("image", "video"):
                raise ValueError(
                    f"Quota.pools: key {key!r} must look like '<model_name>:image' or "
                    "'<model_name>:video'"
                )
        if not 2 <= self.auto_series_estimate <= 9:
            raise ValueError(
                f"Quota.auto_series_estimate: {self.auto_series_estimate}, must be 2–9"
            )
        patience = self.hol_patience
        if patience is not None and patience != "auto":
            if isinstance(patience, bool) or not isinstance(patience, int | float):
                raise ValueError(
                    f"Quota.hol_patience: {patience!r}, must be seconds ≥ 0, 'auto' or None"
                )
            if patience < 0:
                raise ValueError(f"Quota.hol_patience: {patience}, must be ≥ 0, 'auto' or None")

    def capacity(self, model: str, kind: Kind) -> int:
        """Slots of the pool ``(model, kind)``."""
        override = self.pools.get(f"{model}:{kind}")
        if override is not None:
            return override
        return self.image if kind == "image" else self.video

    @classmethod
    def parse(cls, text: str) -> Quota:
        """Parse the CLI form ``"image=9,video=5,kling-image-o1:image=4"`` (``team=3`` for
        Modellix).

        Raises:
            ValueError: The text names an unknown key or a non-integer value.
        """
        kwargs: dict[str, int] = {}
        pools: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not re.fullmatch(r"[0-9]+", value.strip()):
                raise ValueError(f"--quota: {part!r} must look like 'image=9'")
            if key in ("image", "video", "team"):
                kwargs[key] = int(value)
            else:
                pools[key] = int(value)
        return cls(**kwargs, pools=pools)

"""The vendors' own example request bodies run as written (issue 23).

``tests/vendor_examples/`` holds every example create body printed on the vendor pages the SDK
implements (Kling's legacy omni-image and omni-video, Kling's new-standard 3.0 Omni and O1
omni-video, Modellix's Kling model pages), verbatim, each with its source URL, API and model.
Each usable one is read with ``from_wire`` and as a campaign line, and created through the SDK
client over a real socket on the sandbox of its API; the few that cannot run as written
(placeholders such as ``"image": "xxx"``) are listed with the reason. The README's vendor
bodies (its ``from_wire`` snippet and its JSON lines) run the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import kling_async as ka
from kling_async._requests._campaign import parse_line
from kling_async.testing import Sandbox

pytestmark = pytest.mark.anyio

API_KEY = "examples-key"
ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((Path(__file__).parent / "vendor_examples").glob("*.json"))
EXAMPLES = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in CORPUS}
USABLE = sorted(name for name, example in EXAMPLES.items() if "unusable" not in example)

# The examples that cannot run as written, and why (the corpus files say the same).
UNUSABLE = {
    "kling_legacy_image_with_element": 'image_list images are the placeholder "xxx"',
    "kling_legacy_image_with_element_older_page": 'image_list images are the placeholder "xxx"',
    "kling_legacy_video_faq_extend": 'video_url is the placeholder "xxxxxxxx"',
    "kling_legacy_video_image_element_reference": 'not JSON ("element_id": long)',
    "kling_legacy_video_image_to_video_multi_shot": "image_url and callback_url are the "
    'placeholders "xx" / "xxx"',
    "kling_legacy_video_next_shot": 'video_url is the placeholder "xxxxxxxx"',
    "kling_legacy_video_start_end_frames": 'image_url is the placeholder "xxx"',
    "kling_legacy_video_text_to_video_multi_shot": 'callback_url is the placeholder "xxx"',
    "kling_legacy_video_transformation": 'image_url and video_url are the placeholders "xxx"',
    "kling_legacy_video_video_reference": 'not JSON ("element_id": long)',
}


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A sandbox serving Kling (both standards) and Modellix, tasks of a fraction of a second."""
    async with Sandbox(
        api_keys=(API_KEY,),
        image_duration=0.05,
        video_duration=0.05,
        modellix_rpm=100_000,
        seed=23,
    ) as sandbox:
        yield sandbox


def _client(sb: Sandbox, api: str) -> ka.KlingClient:
    """A client on the sandbox speaking ``api``."""
    if api == "modellix":
        return ka.KlingClient(
            api_key=API_KEY,
            provider="modellix",
            base_url=sb.modellix_base_url,
            image_poll_interval=0.02,
            video_poll_interval=0.02,
        )
    return ka.KlingClient(
        api_key=API_KEY,
        base_url=sb.base_url,
        api_standard="new" if api == "kling-new" else "legacy",
        image_poll_interval=0.02,
        video_poll_interval=0.02,
    )


def _wire_body(example: dict[str, Any]) -> dict[str, Any]:
    """The example's body, with the model of its path as ``model_name`` where the API names
    the model in the path (Kling's new standard, Modellix)."""
    body = dict(example["body"])
    if example["api"] in ("kling-new", "modellix"):
        body["model_name"] = example["model"]
    return body


async def _create_and_finish(sb: Sandbox, api: str, request: ka.Request) -> None:
    async with _client(sb, api) as client:
        client.check(request)
        task = await client.submit(request)
        result = await client.wait(task)
    assert result.status is ka.TaskStatus.SUCCEEDED, result.status_message


def test_the_corpus_names_its_source_api_and_model() -> None:
    """Every corpus file names its source URL, API, model and kind, and holds a body."""
    assert len(EXAMPLES) >= 25
    for name, example in EXAMPLES.items():
        assert example["source"].startswith("https://"), name
        assert example["api"] in ("kling-legacy", "kling-new", "modellix"), name
        assert example["kind"] in ("image", "video") and example["model"], name
        assert "body" in example or "body_text" in example, name


def test_the_unusable_examples_are_exactly_the_listed_ones_with_their_reason() -> None:
    """Only placeholder-laden or non-JSON examples are set aside, each with its reason."""
    listed = {name: ex["unusable"] for name, ex in EXAMPLES.items() if "unusable" in ex}
    assert set(listed) == set(UNUSABLE)
    for name, reason in UNUSABLE.items():
        assert listed[name].startswith(reason.split(" / ")[0]), (name, listed[name])


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_an_unusable_example_is_refused_for_its_placeholder(name: str) -> None:
    """The set-aside examples really cannot run as written: not JSON, or a placeholder for a
    URL is refused when read."""
    example = EXAMPLES[name]
    if "body" not in example:
        with pytest.raises(json.JSONDecodeError):
            json.loads(example["body_text"])
        return
    model = ka.OmniImageRequest if example["kind"] == "image" else ka.OmniVideoRequest
    with pytest.raises(ValueError, match=r"no such file|must be an http\(s\) URL"):
        model.from_wire(_wire_body(example), base=Path("/nonexistent-examples-folder"))


@pytest.mark.parametrize("name", USABLE)
async def test_a_vendor_example_is_created_as_written(sb: Sandbox, name: str) -> None:
    """The example body, read with from_wire and as a campaign line, is created on the
    sandbox of its API and the task succeeds."""
    example = EXAMPLES[name]
    api, body = example["api"], _wire_body(example)
    dialect = "modellix" if api == "modellix" else "kling"
    model = ka.OmniImageRequest if example["kind"] == "image" else ka.OmniVideoRequest
    request = model.from_wire(body, provider=dialect)
    line = json.dumps({"kind": example["kind"], **body})
    assert parse_line(line, ROOT, dialect) == request
    await _create_and_finish(sb, api, request)
    assert len(sb.tasks) == 1


# -- the README's vendor bodies ----------------------------------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _readme_blocks(language: str) -> list[str]:
    return [text for lang, text in _BLOCK.findall(README) if lang == language]


def _readme_lines() -> list[str]:
    """The README's JSON blocks that are campaign lines (objects with a ``kind``)."""
    lines = []
    for block in _readme_blocks("json"):
        text = block.strip()
        try:
            objects = [json.loads(text)]
        except json.JSONDecodeError:
            objects = [json.loads(line) for line in text.splitlines() if line.strip()]
        lines += [json.dumps(obj) for obj in objects if isinstance(obj, dict) and "kind" in obj]
    return lines


def _media(folder: Path) -> None:
    """The local files the README's lines name."""
    (folder / "media").mkdir()
    Image.new("RGB", (640, 480), "teal").save(folder / "bird.png")
    Image.new("RGB", (640, 480), "navy").save(folder / "media" / "bottle.jpg")
    Image.new("RGB", (640, 480), "plum").save(folder / "media" / "set.jpg")


def test_the_readme_shows_vendor_bodies() -> None:
    """The README has its from_wire snippet and campaign lines of every dialect."""
    assert any("from_wire(" in block for block in _readme_blocks("python"))
    lines = _readme_lines()
    assert len(lines) >= 5
    assert any('"modellix"' in line for line in lines) and any("contents" in line for line in lines)


async def test_the_readme_from_wire_snippet_runs_and_its_requests_are_created(
    sb: Sandbox,
) -> None:
    """The README's from_wire snippet runs as printed; both requests are created."""
    [snippet] = [block for block in _readme_blocks("python") if "from_wire(" in block]
    names: dict[str, Any] = {"ka": ka}
    exec(compile(snippet, "README.md", "exec"), names)
    await _create_and_finish(sb, "kling-legacy", names["request"])
    await _create_and_finish(sb, "modellix", names["video"])


@pytest.mark.parametrize("index", range(len(_readme_lines())))
async def test_a_readme_campaign_line_is_created(sb: Sandbox, tmp_path: Path, index: int) -> None:
    """Each JSON line the README prints is read as a campaign line and created."""
    _media(tmp_path)
    line = _readme_lines()[index]
    obj = json.loads(line)
    request = parse_line(line, tmp_path)
    api = "modellix" if obj.get("provider") == "modellix" else "kling-legacy"
    if "contents" in obj:
        api = "kling-new"
    await _create_and_finish(sb, api, request)

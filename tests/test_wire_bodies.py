"""Vendor JSON bodies read verbatim: ``OmniImageRequest.from_wire`` / ``OmniVideoRequest.from_wire``
and campaign lines. Round trips go through the real codecs (``build_create``), so a body the SDK
reads is the body it sends, up to the documented defaults."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import kling_async as ka
from kling_async._providers.kling import KlingCodec
from kling_async._providers.modellix import ModellixCodec
from kling_async._requests._campaign import CampaignLine, CampaignLineError, read_campaign

URL = "https://example.com/ref.png"
URL2 = "https://example.com/style.jpg"
VIDEO_URL = "https://example.com/clip.mp4"

# Documented defaults: a body that leaves a field out means these.
IMAGE_DEFAULTS = {
    "model_name": "kling-image-o1",
    "resolution": "1k",
    "result_type": "single",
    "n": 1,
    "aspect_ratio": "auto",
}
VIDEO_DEFAULTS = {
    "model_name": "kling-video-o1",
    "multi_shot": False,
    "sound": "off",
    "mode": "pro",
    "duration": "5",
}

# Kling's omni-image page (https://kling.ai/document-api/api/image/3-0-omni/image-omni) and its
# older mirror (seed 004); bodies copied as the pages print them.
KLING_IMAGE_BODIES: dict[str, dict[str, Any]] = {
    "seed-004 create example": {
        "model_name": "kling-image-o1",
        "prompt": "Merge all the people in the images into the <<<object_1>>> image",
        "element_list": [{"element_id": 829836802793406551}],
        "image_list": [
            {"image": "https://v1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-qa-test/multi-4.png"},
            {
                "image": "https://p2-kling.klingai.com/kcdn/cdn-kcdn112452/kling-qa-test/"
                "video_effects/1.png"
            },
            {
                "image": "https://p2-kling.klingai.com/kcdn/cdn-kcdn112452/kling-qa-test/"
                "video_effects/4.png"
            },
        ],
        "resolution": "2k",
        "n": 1,
        "aspect_ratio": "3:2",
    },
    "series with element, callback and external id": {
        "model_name": "kling-v3-omni",
        "prompt": "cover for <<<element_1>>> in the style of <<<image_1>>>",
        "image_list": [{"image": URL2}],
        "element_list": [{"element_id": 160}],
        "resolution": "2k",
        "result_type": "series",
        "series_amount": 2,
        "aspect_ratio": "auto",
        "external_task_id": "job-123",
        "callback_url": "https://example.com/kling-cb",
    },
    "auto series": {
        "model_name": "kling-v3-omni",
        "prompt": "a story in frames of <<<image_1>>>",
        "image_list": [{"image": URL}],
        "result_type": "series",
        "series_amount": "auto",
    },
    "watermark and 4k": {
        "model_name": "kling-v3-omni",
        "prompt": "a watch on slate",
        "resolution": "4k",
        "n": 4,
        "aspect_ratio": "16:9",
        "watermark_info": {"enabled": True},
    },
    "prompt only": {"prompt": "A ceramic mug on linen"},
}

# Kling's legacy omni-video body (POST /v1/videos/omni-video), every documented field.
KLING_VIDEO_BODIES: dict[str, dict[str, Any]] = {
    "text to video": {
        "model_name": "kling-v3-omni",
        "prompt": "A dreamy spring teaser",
        "aspect_ratio": "16:9",
        "duration": "8",
        "mode": "pro",
        "sound": "on",
    },
    "first and end frame": {
        "model_name": "kling-v3-omni",
        "prompt": "from <<<image_1>>> to <<<image_2>>>",
        "image_list": [
            {"image_url": URL, "type": "first_frame"},
            {"image_url": URL2, "type": "end_frame"},
        ],
        "duration": "5",
        "mode": "std",
        "watermark_info": {"enabled": False},
    },
    "reference images and elements": {
        "model_name": "kling-v3-omni",
        "prompt": "<<<element_1>>> walks past <<<image_1>>>",
        "image_list": [{"image_url": URL}],
        "element_list": [{"element_id": 160}],
        "aspect_ratio": "9:16",
        "duration": "10",
    },
    "feature reference video": {
        "model_name": "kling-v3-omni",
        "prompt": "the camera move of <<<video_1>>> around <<<image_1>>>",
        "image_list": [{"image_url": URL}],
        "video_list": [
            {"video_url": VIDEO_URL, "refer_type": "feature", "keep_original_sound": "no"}
        ],
        "aspect_ratio": "1:1",
        "duration": "5",
        "sound": "off",
    },
    "base video edit": {
        "model_name": "kling-v3-omni",
        "prompt": "restyle <<<video_1>>> in frosted glass",
        "video_list": [
            {"video_url": VIDEO_URL, "refer_type": "base", "keep_original_sound": "yes"}
        ],
    },
    "customize multi-shot": {
        "model_name": "kling-v3-omni",
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [
            {"index": 1, "prompt": "close-up of hands", "duration": "2"},
            {"index": 2, "prompt": "a lane in blossom", "duration": "3"},
        ],
        "aspect_ratio": "16:9",
        "duration": "5",
        "external_task_id": "shots-1",
        "callback_url": "https://example.com/cb",
    },
    "intelligence multi-shot": {
        "model_name": "kling-v3-omni",
        "prompt": "a morning ritual in a few shots",
        "multi_shot": True,
        "shot_type": "intelligence",
        "aspect_ratio": "9:16",
        "duration": "12",
    },
    "o1 text to video": {
        "model_name": "kling-video-o1",
        "prompt": "petals in the wind",
        "aspect_ratio": "16:9",
        "duration": "10",
    },
}

# Modellix's pages (https://docs.modellix.ai/kling/...): the curl examples of seeds 000–002, then
# every documented flat field.
MODELLIX_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "seed-002 kling-image-o1": (
        "image",
        {"model_name": "kling-image-o1", "prompt": "A serene landscape with mountains at sunset"},
    ),
    "v3 image series, images and element_ids": (
        "image",
        {
            "model_name": "kling-v3-omni-image",
            "prompt": "a series of <<<image_1>>>",
            "images": [URL],
            "element_ids": [160],
            "resolution": "4k",
            "result_type": "series",
            "series_amount": 3,
            "aspect_ratio": "auto",
        },
    ),
    "v3 video with images": (
        "video",
        {
            "model_name": "kling-v3-omni-video",
            "prompt": "the bottle of <<<image_1>>> turns",
            "images": [URL],
            "multi_shot": True,
            "shot_type": "intelligence",
            "sound": "on",
            "mode": "std",
            "aspect_ratio": "16:9",
            "duration": 8,
        },
    ),
    "video-o1 with a video": (
        "video",
        {
            "model_name": "kling-video-o1",
            "prompt": "restyle <<<video_1>>>",
            "videos": [VIDEO_URL],
            "sound": "off",
        },
    ),
}
MODELLIX_DEFAULTS = {
    "image": {"resolution": "1k", "aspect_ratio": "auto", "n": 1},
    "video": {"multi_shot": False, "sound": "off", "mode": "pro", "duration": 5},
}


def _expected(body: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The body as the SDK sends it: documented defaults filled in, the model in the path."""
    out = {**defaults, **copy.deepcopy(body)}
    out.pop("model_name", None)
    return out


def _kling_wire(request: ka.Request) -> dict[str, Any]:
    return KlingCodec().build_create(request, request.external_task_id or "generated-id")


@pytest.mark.parametrize("name", sorted(KLING_IMAGE_BODIES))
def test_kling_image_body_round_trips(name: str) -> None:
    """Every documented omni-image body comes back from the codec as written, plus defaults."""
    body = KLING_IMAGE_BODIES[name]
    request = ka.OmniImageRequest.from_wire(body)
    wire = _kling_wire(request)
    expected = {**IMAGE_DEFAULTS, **body}
    expected.setdefault("external_task_id", "generated-id")
    if expected["result_type"] == "series":
        expected.pop("n")  # §series: n is not sent (the API ignores it)
    assert wire == expected


@pytest.mark.parametrize("name", sorted(KLING_VIDEO_BODIES))
def test_kling_video_body_round_trips(name: str) -> None:
    """Every documented omni-video body comes back from the codec as written, plus defaults."""
    body = KLING_VIDEO_BODIES[name]
    request = ka.OmniVideoRequest.from_wire(body)
    expected = {**VIDEO_DEFAULTS, **body}
    expected.setdefault("external_task_id", "generated-id")
    assert _kling_wire(request) == expected


@pytest.mark.parametrize("name", sorted(MODELLIX_BODIES))
def test_modellix_body_round_trips(name: str) -> None:
    """Every documented Modellix flat body comes back from the Modellix codec as written."""
    kind, body = MODELLIX_BODIES[name]
    model = ka.OmniImageRequest if kind == "image" else ka.OmniVideoRequest
    request = model.from_wire(body, provider="modellix")
    wire = ModellixCodec().build_create(request, "unused")
    expected = _expected(body, MODELLIX_DEFAULTS[kind])
    if kind == "image" and request.model_name == "kling-v3-omni":
        expected.setdefault("result_type", "single")
    if expected.get("result_type") == "series":
        expected.pop("n")
    if kind == "video" and "videos" in body:
        expected.pop("duration")  # Modellix: duration is left out with videos
    assert wire == expected


def test_modellix_v3_image_example_is_read_as_written() -> None:
    """Modellix's kling-v3-omni-image curl example (a prompt alone, its ratio left to Modellix)
    is a valid request: Kling's native capability map ("no auto ratio for 3.0 Omni
    text-to-image") does not bind a Modellix request; on Kling's own API the rule still holds."""
    body = {
        "model_name": "kling-v3-omni-image",
        "prompt": "Create a luxury perfume campaign visual using the reference bottle image",
    }
    request = ka.OmniImageRequest.from_wire(body, provider="modellix")
    assert (request.model_name, request.image_list) == ("kling-v3-omni", ())
    native = {"model_name": "kling-v3-omni", "prompt": body["prompt"]}
    with pytest.raises(ValueError, match=r"^aspect_ratio: 'auto', kling-v3-omni text-to-image"):
        ka.OmniImageRequest.from_wire(native)


def test_modellix_v3_video_example_is_read_as_written() -> None:
    """Modellix's kling-v3-omni-video curl example (a prompt alone, no aspect ratio) is a valid
    request: the legacy standard's "aspect ratio required" rule does not bind Modellix."""
    body = {
        "model_name": "kling-v3-omni-video",
        "prompt": "A woman leaves a subway station and walks into a rainy cyberpunk street, "
        "then the camera tracks beside her",
    }
    request = ka.OmniVideoRequest.from_wire(body, provider="modellix")
    assert (request.model_name, request.aspect_ratio, request.multi_shot) == (
        "kling-v3-omni",
        None,
        None,
    )
    with pytest.raises(ValueError, match=r"^aspect_ratio: None, required unless a first frame"):
        ka.OmniVideoRequest.from_wire({**body, "model_name": "kling-v3-omni"})


def test_quoted_element_id_and_string_duration_are_read() -> None:
    """The quoted element id and string durations some doc examples use become integers."""
    image = ka.OmniImageRequest.from_wire(
        {"prompt": "x", "element_list": [{"element_id": "160"}], "n": "2"}
    )
    assert image.element_list == (160,) and image.n == 2
    video = ka.OmniVideoRequest.from_wire(
        {"model_name": "kling-v3-omni", "prompt": "x", "aspect_ratio": "1:1", "duration": "8"}
    )
    assert video.duration == 8


def test_modellix_model_ids_map_to_kling_model_names() -> None:
    """A Modellix model id names the same model as Kling's model_name."""
    image = ka.OmniImageRequest.from_wire(
        {"model_name": "kling-v3-omni-image", "prompt": "x", "aspect_ratio": "1:1"},
        provider="modellix",
    )
    video = ka.OmniVideoRequest.from_wire(
        {"model_name": "kling-v3-omni-video", "prompt": "x", "aspect_ratio": "1:1"},
        provider="modellix",
    )
    assert image.model_name == video.model_name == "kling-v3-omni"


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        (
            "image",
            {"prompt": "x", "aspect_ration": "1:1"},
            "unknown field 'aspect_ration' (did you mean 'aspect_ratio'?)",
        ),
        (
            "image",
            {"prompt": "x", "image_list": [{"imag": URL}]},
            "image_list[0]: unknown field 'imag' (did you mean 'image'?)",
        ),
        (
            "video",
            {"prompt": "x", "image_list": [{"image_url": URL, "typ": "first_frame"}]},
            "image_list[0]: unknown field 'typ' (did you mean 'type'?)",
        ),
        (
            "video",
            {"prompt": "x", "duraton": "5"},
            "unknown field 'duraton' (did you mean 'duration'?)",
        ),
        (
            "image",
            {"prompt": "x", "watermark_info": {"enable": True}},
            "watermark_info: unknown field 'enable' (did you mean 'enabled'?)",
        ),
        ("image", {"prompt": "x", "cfg_scale": 0.5}, "unknown field 'cfg_scale'"),
        (
            "image",
            {"prompt": "x", "images": [URL]},
            "unknown field 'images' (did you mean 'image_list'?)",
        ),
    ],
)
def test_unknown_field_names_the_nearest_known_one(
    kind: str, body: dict[str, Any], message: str
) -> None:
    """A misspelt field is refused with its name and the nearest known field."""
    model = ka.OmniImageRequest if kind == "image" else ka.OmniVideoRequest
    with pytest.raises(ValueError) as info:
        model.from_wire(body)
    assert str(info.value) == message


def test_far_away_unknown_field_gets_no_suggestion() -> None:
    """A field like nothing known is named without a misleading suggestion."""
    with pytest.raises(ValueError, match=r"^unknown field 'cfg_scale'$"):
        ka.OmniImageRequest.from_wire({"prompt": "x", "cfg_scale": 0.5})


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ({"prompt": "x", "duration": "five"}, TypeError, r"^duration: expected an integer"),
        (
            {"prompt": "x", "watermark_info": {"enabled": "no"}},
            TypeError,
            r"^watermark_info\.enabled",
        ),
        (
            {"prompt": "x", "image_list": {"image_url": URL}},
            TypeError,
            r"^image_list: expected a JSON array",
        ),
        (
            {"prompt": "x", "multi_prompt": [{"index": 1, "prompt": "a"}]},
            ValueError,
            r"^multi_prompt\[0\]: missing field 'duration'",
        ),
        (
            {"prompt": "x", "video_list": [{"refer_type": "base"}]},
            ValueError,
            r"^video_list\[0\]: missing field 'video_url'",
        ),
        (
            {"prompt": "x", "watermark": True, "watermark_info": {"enabled": True}},
            ValueError,
            "give one of them",
        ),
    ],
)
def test_malformed_values_name_the_field(body: dict[str, Any], error: type, match: str) -> None:
    """A value of the wrong form is refused with its field's path."""
    with pytest.raises(error, match=match):
        ka.OmniVideoRequest.from_wire(body)


def _png(path: Path, size: tuple[int, int] = (400, 300)) -> Path:
    Image.new("RGB", size, (120, 160, 200)).save(path)
    return path


def test_local_paths_resolve_against_base_and_base64_decodes(tmp_path: Path) -> None:
    """A relative path resolves against base; raw base64 and data: URIs become bytes."""
    png = _png(tmp_path / "ref.png")
    raw = base64.b64encode(png.read_bytes()).decode()
    request = ka.OmniImageRequest.from_wire(
        {
            "prompt": "x",
            "image_list": [
                {"image": "ref.png"},
                {"image": raw},
                {"image": f"data:image/png;base64,{raw}"},
            ],
        },
        base=tmp_path,
    )
    assert request.image_list == (png, png.read_bytes(), png.read_bytes())
    wire = KlingCodec().build_create(request, "id")
    assert [item["image"] for item in wire["image_list"]] == [raw, raw, raw]


def test_missing_local_file_is_named(tmp_path: Path) -> None:
    """A local image that does not exist is refused with its full path, before anything else."""
    with pytest.raises(ValueError, match=r"image_list\[0\]\.image_url: no such file: .*nope\.png"):
        ka.OmniVideoRequest.from_wire(
            {"prompt": "x", "image_list": [{"image_url": "nope.png", "type": "first_frame"}]},
            base=tmp_path,
        )
    with pytest.raises(ValueError, match="is a folder"):
        ka.OmniImageRequest.from_wire(
            {"prompt": "x", "image_list": [{"image": "."}]}, base=tmp_path
        )


def test_mixed_campaign_lines(tmp_path: Path) -> None:
    """Vendor bodies and the SDK's own shapes mix in one file; bad lines are errors, not stops."""
    _png(tmp_path / "bottle.png")
    lines = [
        {
            "kind": "image",
            "prompt": "a",
            "image_list": [{"image": "bottle.png"}],
            "watermark_info": {"enabled": False},
        },
        {"kind": "image", "prompt": "b", "image_list": ["bottle.png"], "watermark": False},
        {
            "kind": "video",
            "model_name": "kling-v3-omni",
            "prompt": "c",
            "image_list": [{"image_url": "bottle.png", "type": "first_frame"}],
            "duration": "8",
        },
        {
            "kind": "video",
            "model_name": "kling-v3-omni",
            "prompt": "d",
            "image_list": [{"image": "bottle.png", "type": "first_frame"}],
            "duration": 8,
        },
        {"kind": "image", "prompt": "e", "aspect_ration": "1:1"},
        {"kind": "image", "prompt": "f", "image_list": [{"image": "missing.png"}]},
        {
            "kind": "image",
            "provider": "modellix",
            "model_name": "kling-v3-omni-image",
            "prompt": "g",
            "images": ["bottle.png"],
            "aspect_ratio": "1:1",
        },
        {"kind": "image", "provider": "acme", "prompt": "h"},
    ]
    path = tmp_path / "campaign.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    items = list(read_campaign(path))
    errors = {item.line: item.reason for item in items if isinstance(item, CampaignLineError)}
    assert set(errors) == {5, 6, 8}
    assert "did you mean 'aspect_ratio'" in errors[5]
    assert str(tmp_path / "missing.png") in errors[6]
    assert "provider" in errors[8]
    requests = [item.request for item in items if isinstance(item, CampaignLine)]
    assert [r.prompt for r in requests] == ["a", "b", "c", "d", "g"]
    assert requests[0].image_list == requests[1].image_list == (tmp_path / "bottle.png",)
    assert attrs.evolve(requests[2], prompt="d") == requests[3]
    assert requests[4].model_name == "kling-v3-omni"


def test_campaign_default_dialect_modellix(tmp_path: Path) -> None:
    """read_campaign(provider='modellix') reads flat bodies on lines that name no provider."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"kind": "video", "prompt": "x", "videos": [VIDEO_URL]}) + "\n")
    (kling,) = read_campaign(path)
    assert isinstance(kling, CampaignLineError) and "did you mean 'video_list'" in kling.reason
    (modellix,) = read_campaign(path, "modellix")
    assert isinstance(modellix, CampaignLine)
    assert modellix.request.video_list[0].video == VIDEO_URL


_urls = st.sampled_from([URL, URL2, "https://cdn.example.org/a/b.jpg"])


@st.composite
def image_requests(draw: st.DrawFn) -> ka.OmniImageRequest:
    model = draw(st.sampled_from(["kling-image-o1", "kling-v3-omni"]))
    series = model == "kling-v3-omni" and draw(st.booleans())
    fields: dict[str, Any] = {
        "prompt": draw(st.text(min_size=1, max_size=40).filter(str.strip)),
        "model_name": model,
        "image_list": draw(st.lists(_urls, min_size=1, max_size=4)),
        "element_list": draw(st.lists(st.integers(1, 2**62), max_size=3)),
        "resolution": draw(st.sampled_from(["1k", "2k"])),
        "aspect_ratio": draw(st.sampled_from(["1:1", "16:9", "auto"])),
        "watermark": draw(st.sampled_from([None, True, False])),
    }
    if series:
        fields["result_type"] = "series"
        fields["series_amount"] = draw(st.one_of(st.integers(2, 9), st.just("auto")))
    else:
        fields["n"] = draw(st.integers(1, 9))
    return ka.OmniImageRequest(**fields)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(image_requests())
def test_reading_what_the_codec_sends_gives_the_same_body(request: ka.OmniImageRequest) -> None:
    """from_wire reads back exactly the body the Kling codec builds for any valid request."""
    wire = KlingCodec().build_create(request, "eid")
    again = KlingCodec().build_create(ka.OmniImageRequest.from_wire(wire), "eid")
    assert again == wire


def test_empty_strings_the_examples_use_for_none_are_read_as_absent() -> None:
    """'"callback_url": ""', '"external_task_id": ""' and a '"prompt": ""' beside customised
    shots (the legacy pages' examples) are left out, not refused; an empty image prompt is
    still refused."""
    video = ka.OmniVideoRequest.from_wire(
        {
            "model_name": "kling-v3-omni",
            "multi_shot": True,
            "shot_type": "customize",
            "prompt": "",
            "multi_prompt": [
                {"index": 1, "prompt": "a door opens", "duration": "2"},
                {"index": 2, "prompt": "rain falls", "duration": "3"},
            ],
            "aspect_ratio": "16:9",
            "duration": "5",
            "callback_url": "",
            "external_task_id": "",
        }
    )
    assert (video.prompt, video.callback_url, video.external_task_id) == (None, None, None)
    with pytest.raises(ValueError, match=r"^prompt: '', must be 1–2500 characters, not empty"):
        ka.OmniImageRequest.from_wire({"prompt": "", "callback_url": ""})

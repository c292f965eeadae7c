"""Hostile campaign lines and hostile server text: one bad line is one invalid line with its
number, the rest run; nothing from outside is read as console markup or printed with raw
control characters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kling_async._requests._campaign import CampaignLine, CampaignLineError, read_campaign
from kling_async.cli._text import safe

from .conftest import QUICK_SANDBOX
from .hostile_kling import hostile_kling

GOOD = '{"kind": "image", "prompt": "a mug"}'
NESTED = '{"kind": "image", "prompt": "a", "x": ' + "[" * 1500 + "]" * 1500 + "}"
MARKUP_KEY = '{"kind": "image", "prompt": "a", "[/x]": 1}'
HOSTILE_MESSAGE = "[/x] \x1b[2K\rline 9: succeeded\nforged \u202eevil"

HOSTILE_LINES: dict[str, tuple[bytes, str]] = {
    "nested 1,500 deep": (NESTED.encode(), "nested too deeply"),
    "1e999999": (b'{"kind": "image", "prompt": "a", "n": 1e999999}', "number out of range"),
    "100,000-digit integer": (
        b'{"kind": "image", "prompt": "a", "n": ' + b"1" * 100_000 + b"}",
        "number out of range",
    ),
    "NaN": (b'{"kind": "image", "prompt": "a", "n": NaN}', "NaN is not a JSON number"),
    "invalid UTF-8": (b'{"kind": "image", "prompt": "\xff\xfe"}', "not UTF-8 text"),
    "10 MB line": (
        b'{"kind": "image", "prompt": "' + b"a" * 10_000_000 + b'"}',
        "longer than 4194304 bytes",
    ),
}


def _write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE_LINES))
def test_an_unreadable_line_is_one_invalid_line(tmp_path: Path, case: str) -> None:
    """A line that cannot be read (deep nesting, a huge number, bad UTF-8, 10 MB) is invalid
    with its line number and reason; the lines around it are read."""
    line, reason = HOSTILE_LINES[case]
    path = _write(tmp_path / "c.jsonl", GOOD.encode(), line, GOOD.encode())
    items = list(read_campaign(path))
    assert [type(i) for i in items] == [CampaignLine, CampaignLineError, CampaignLine]
    assert [i.line for i in items] == [1, 2, 3]
    error = items[1]
    assert isinstance(error, CampaignLineError) and reason in error.reason
    assert len(error.reason) < 1000


def test_a_byte_order_mark_before_line_1_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark before the first line is skipped: line 1 is a request."""
    path = _write(tmp_path / "c.jsonl", b"\xef\xbb\xbf" + GOOD.encode(), GOOD.encode())
    assert [type(i) for i in read_campaign(path)] == [CampaignLine, CampaignLine]


def test_a_reused_external_task_id_is_invalid_naming_the_first_line(tmp_path: Path) -> None:
    """The second line with an external_task_id already used is invalid and names the line
    that used it first; an invalid line claims no id."""
    with_id = b'{"kind": "image", "prompt": "a", "external_task_id": "x"}'
    broken_with_id = b'{"kind": "image", "prompt": "a", "n": 0, "external_task_id": "y"}'
    other = b'{"kind": "image", "prompt": "a", "external_task_id": "y"}'
    path = _write(tmp_path / "c.jsonl", GOOD.encode(), with_id, broken_with_id, other, with_id)
    items = list(read_campaign(path))
    assert [type(i).__name__ for i in items] == [
        "CampaignLine",
        "CampaignLine",
        "CampaignLineError",
        "CampaignLine",
        "CampaignLineError",
    ]
    last = items[4]
    assert isinstance(last, CampaignLineError)
    assert last.reason == "external_task_id 'x' already used on line 2"


def test_safe_escapes_control_and_invisible_characters() -> None:
    """safe() shows ANSI escapes, CR/LF, C1 controls and bidi overrides escaped, and keeps
    ordinary text (markup brackets included) as it is."""
    shown = safe("a\x1b[31m\r\n\x85\u202eb [/x] é")
    assert shown == "a\\x1b[31m\\r\\n\\x85\\u202eb [/x] é"
    assert safe("x" * 3000).endswith("… (1000 more characters)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    return env | extra


async def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return await anyio.run_process(
        [sys.executable, "-m", "kling_async", *args], env=env or _env(), check=False
    )


def _manifest(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.anyio
async def test_hostile_lines_in_a_sandbox_run_are_invalid_and_the_rest_run(
    tmp_path: Path,
) -> None:
    """`kling-async run` over nested, markup, huge-number, bad-UTF-8 and duplicate-id lines
    finishes: one manifest row per line, the bad ones invalid, the good ones succeeded, no
    run-level error; `estimate` lists the same lines as invalid."""
    dup = b'{"kind": "image", "prompt": "a", "external_task_id": "dup"}'
    bad = [HOSTILE_LINES["nested 1,500 deep"][0], MARKUP_KEY.encode()]
    bad += [HOSTILE_LINES["invalid UTF-8"][0], HOSTILE_LINES["1e999999"][0]]
    path = _write(tmp_path / "c.jsonl", GOOD.encode(), *bad, dup, dup)
    out = tmp_path / "out"
    proc = await _cli("run", str(path), "--out", str(out), "--sandbox", *QUICK_SANDBOX)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "unexpected error" not in stderr
    rows = _manifest(out)
    assert [r["line"] for r in rows] == list(range(1, 8))
    assert [r["status"] for r in rows] == ["succeeded"] + ["invalid"] * 4 + ["succeeded"] * 1 + [
        "invalid"
    ]
    assert rows[6]["error"] == "external_task_id 'dup' already used on line 6"
    assert "line 3: invalid: unknown field '[/x]'" in stderr
    estimate = await _cli("estimate", str(path))
    printed = estimate.stdout.decode()
    assert estimate.returncode == 1, estimate.stderr.decode()
    assert "line 2: invalid: nested too deeply" in printed
    assert "line 7: invalid: external_task_id 'dup' already used on line 6" in printed


@pytest.mark.anyio
async def test_a_server_message_with_markup_and_escapes_is_shown_escaped(tmp_path: Path) -> None:
    """A failed task whose task_status_msg holds `[/x]`, an ANSI escape, CR/LF and a bidi
    override ends its line as failed; the console and the log file show the message escaped,
    on one line, and a resume does the same."""
    path = _write(tmp_path / "c.jsonl", GOOD.encode(), GOOD.encode())
    out, log = tmp_path / "out", tmp_path / "run.log"
    async with hostile_kling(task_status_msg=HOSTILE_MESSAGE) as server:
        env = _env(KLING_API_KEY="hostile-test-key")
        args = ("run", str(path), "--out", str(out), "--base-url", server.base_url)
        for _ in range(2):  # the first run, then a resume of the ended tasks
            proc = await _cli(*args, "-v", "--log-file", str(log), env=env)
            stderr = proc.stderr.decode()
            assert proc.returncode == 1, stderr
            assert "unexpected error" not in stderr
            assert [r["status"] for r in _manifest(out)] == ["failed", "failed"]
            for text in (stderr, log.read_text(encoding="utf-8")):
                assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
                assert not any(line.startswith("forged") for line in text.splitlines())
                assert "\\x1b[2K\\rline 9: succeeded\\nforged \\u202eevil" in text
            assert "[/x]" in stderr
        assert server.creates == 2


# Property: mutated lines of the example campaign, through the reader and the CLI.

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_LINES = [
    line.encode() for line in (EXAMPLES / "campaign.jsonl").read_text("utf-8").splitlines()
]
INSERTS = ["[/x]", "[bold]", '"', "{", "]", ",", "\\", "\x1b[2J", "\r", "\x00", "\u202e", "é"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """One example line, mutated (or not) the ways a careless or hostile user would."""
    line = draw(st.sampled_from(EXAMPLE_LINES))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        how = draw(st.sampled_from(["delete", "duplicate", "insert", "nest", "number", "bytes"]))
        if how == "delete":
            line = line[:at] + line[at + 1 :]
        elif how == "duplicate":
            line = line[:at] + line[at : at + 1] * 2 + line[at + 1 :]
        elif how == "insert":
            line = line[:at] + draw(st.sampled_from(INSERTS)).encode() + line[at:]
        elif how == "nest":
            depth = draw(st.sampled_from([2, 50, 999, 1500, 5000]))
            line = line[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
        elif how == "number":
            number = draw(st.sampled_from([b"1e999999", b"-1e400", b"1" * 5000, b"NaN", b"0"]))
            line = line.replace(b'"n": 4', b'"n": ' + number)
        else:
            line = (
                line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + line[at:]
            )
    return line.replace(b"\n", b"")


def _campaign_bytes(lines: list[bytes], bom: bool) -> bytes:
    return (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + b"\n" for line in lines)


def _content_numbers(lines: list[bytes]) -> list[int]:
    """The 1-based numbers of the lines that are neither blank nor comments."""
    return [n for n, line in enumerate(lines, 1) if line.strip() and line.strip()[:1] != b"#"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_mutated(), min_size=1, max_size=8), bom=st.booleans())
def test_the_reader_gives_one_item_per_line_whatever_the_line(
    lines: list[bytes], bom: bool
) -> None:
    """Mutated example lines (chars deleted, doubled or inserted, markup, controls, deep
    nesting, huge numbers, bad UTF-8, a BOM): one item per content line, numbered, in order,
    and no exception escapes the reader."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.jsonl"
        (Path(folder) / "media").symlink_to(EXAMPLES / "media")
        path.write_bytes(_campaign_bytes(lines, bom))
        items = list(read_campaign(path))
    assert [i.line for i in items] == _content_numbers(lines)
    for item in items:
        if isinstance(item, CampaignLineError):
            assert 0 < len(item.reason) < 1000


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_mutated(), min_size=2, max_size=5), bom=st.booleans())
def test_a_sandbox_run_of_mutated_lines_has_one_row_per_line(lines: list[bytes], bom: bool) -> None:
    """`kling-async run --sandbox` over mutated example lines ends without a run-level error,
    with one manifest row per line, and sends nothing for an invalid line."""
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "c.jsonl", Path(folder) / "out"
        (Path(folder) / "media").symlink_to(EXAMPLES / "media")
        path.write_bytes(_campaign_bytes(lines, bom))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "kling_async",
                "run",
                str(path),
                "--out",
                str(out),
                "--sandbox",
                *QUICK_SANDBOX,
            ],
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode in (0, 1), proc.stderr
        assert "unexpected error" not in proc.stderr
        rows = _manifest(out)
        state = (out / "sandbox-state.jsonl").read_text("utf-8").splitlines()[1:]
    assert [r["line"] for r in rows] == _content_numbers(lines)
    sent = {json.loads(s)["external_task_id"] for s in state}
    keys_of_invalid = {r["external_task_id"] for r in rows if r["status"] == "invalid"}
    keys_of_others = {r["external_task_id"] for r in rows if r["status"] != "invalid"}
    assert sent <= keys_of_others and not (sent & (keys_of_invalid - {None}))

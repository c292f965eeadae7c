"""``kling-async status`` and ``gallery`` on a run folder whose manifest and run records were
written by someone hostile or careless: each bad line is skipped or shown escaped, the command
still exits 0 (real processes of ``python -m kling_async``)."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli_status import _kling

SECRET = "sk-hostile-secret-0123456789"


def _hostile_folder(out: Path) -> None:
    out.mkdir()
    rows = [
        {"line": 1, "status": "succeeded", "external_task_id": "a", "prompt": "<script>x</script>"},
        {"line": 2, "status": "[/x]\x1b[31mfailed\r\nforged", "external_task_id": "b"},
        {"line": 3, "status": "failed", "external_task_id": ["unhashable"], "units": "sNaN"},
        {"line": 4, "status": "x" * 50_000, "external_task_id": "d", "prompt": f"Bearer {SECRET}"},
        {"line": 5, "status": f"Bearer {SECRET}", "units": "Infinity"},
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    text += "[" * 5000 + "]" * 5000 + "\n"  # nested past the JSON parser's recursion limit
    text += "not json\n" + "[1, 2]\n" + "{" + '"a": "' + "y" * (2 << 20) + '"}\n'
    (out / "manifest.jsonl").write_text(text, encoding="utf-8")
    runs = [
        {"ended_at": "yesterday", "outcome": "[bold]done", "units": {"x": 1}},
        {"ended_at": 1e300, "outcome": "done\x07", "resume_command": ["not", "text"]},
    ]
    (out / "runs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in runs) + "[" * 5000 + "\n", encoding="utf-8"
    )


def test_status_of_a_hostile_folder_shows_it_escaped(tmp_path: Path) -> None:
    """A manifest with markup, control characters, a secret, a 50,000-character status, an
    unhashable key and lines nested 5,000 deep, and run records of the wrong types: ``status``
    exits 0, counts the readable rows, prints no raw control character, no secret and no line
    over a few thousand characters."""
    out = tmp_path / "out"
    _hostile_folder(out)
    proc = _kling("status", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "unexpected error" not in proc.stderr
    assert "5 lines in the manifest" in proc.stdout
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout and "\x07" not in proc.stdout
    assert SECRET not in proc.stdout
    assert "forged" in proc.stdout  # shown, on the same line as the escaped newline
    assert not any(line.startswith("forged") for line in proc.stdout.splitlines())
    assert max(len(line) for line in proc.stdout.splitlines()) < 5000
    as_json = _kling("status", str(out), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert sum(json.loads(as_json.stdout)["lines"].values()) == 5


def test_gallery_of_a_hostile_folder_is_written(tmp_path: Path) -> None:
    """The same folder (and a prompt holding HTML): ``gallery`` exits 0, writes a card per
    readable row with the HTML escaped, and prints the page's path."""
    out = tmp_path / "out"
    _hostile_folder(out)
    proc = _kling("gallery", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count('<article class="card"') == 5
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page

"""Every ``python`` code block of README.md and docs/*.md runs, as the README says to run them:
a block continues from ``import kling_async as ka`` and some ``requests``; one that awaits at
top level (or uses a ``client`` it does not make) runs inside an ``async def`` with an open
``client`` (README, "Library use"). Each runs in its own process against a sandbox, with the
credentials and base URL in the environment (``KLING_API_KEY``, ``KLING_BASE_URL``), in an
empty folder."""

from __future__ import annotations

import ast
import os
import re
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from kling_async.testing import Sandbox

from .redis_server import RedisServer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The keys the snippets use ("..." is the README's placeholder) and the environment's.
KEYS = ("...", "test", "docs-snippet-key")
# Hosts the docs name for the reader's own infrastructure, replaced by the test's.
REDIS_IN_DOCS = "redis://redis.internal:6379/0"
PATH_IN_DOCS = "/var/lib/myapp/"
# What a block that is not a whole program continues from (README, "Library use").
CONTEXT = """\
import kling_async as ka
requests = [ka.OmniImageRequest(prompt="a red mug", n=1) for _ in range(3)]
"""
# Blocks that fail for a reason tracked elsewhere: (file name, a text the block holds) → why.
KNOWN: dict[tuple[str, str], str] = {}  # (doc, a line of the block) → why it may not run


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            found.append((path.name, line, match[1]))
    return found


def _runs_at_top_level(code: str) -> bool:
    """False if the block awaits at top level (``await``, ``async with``, ``async for``) or
    uses a ``client`` it does not make."""
    try:
        compile(code, "<doc block>", "exec", dont_inherit=True)
    except SyntaxError:
        return False
    tree = ast.parse(code)
    names = {(n.id, type(n.ctx)) for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return ("client", ast.Load) not in names or ("client", ast.Store) in names


def _script(code: str, redis_url: str, folder: Path) -> str:
    code = code.replace(REDIS_IN_DOCS, redis_url).replace(PATH_IN_DOCS, f"{folder}/")
    if _runs_at_top_level(code):
        return f"{CONTEXT}\n{code}"
    body = textwrap.indent(code, " " * 8)
    return (
        f"import asyncio\n{CONTEXT}\n\n"
        "import kling_async as _ka\n\n\n"
        "async def main():\n"
        "    async with _ka.KlingClient() as client:  # the environment's key and base URL\n"
        f"{body}\n\n"
        "asyncio.run(main())\n"
    )


@pytest.mark.parametrize(
    ("doc", "line", "code"),
    [pytest.param(*block, id=f"{block[0]}:{block[1]}") for block in _blocks()],
)
async def test_docs_block_runs(
    doc: str,
    line: int,
    code: str,
    tmp_path: Path,
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
) -> None:
    """The block runs to its end (exit 0) against a sandbox."""
    for (known_doc, text), reason in KNOWN.items():
        if known_doc == doc and text in code:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    async with Sandbox(
        api_keys=KEYS, image_duration=(0.02, 0.05), video_duration=(0.05, 0.1)
    ) as sandbox:
        script = tmp_path / "snippet.py"
        script.write_text(_script(code, redis_server.url, tmp_path), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
        env.update(KLING_API_KEY="docs-snippet-key", KLING_BASE_URL=sandbox.base_url)
        proc = await anyio.run_process(
            [sys.executable, str(script)], cwd=tmp_path, env=env, check=False
        )
    assert proc.returncode == 0, (
        f"{doc}:{line}\n{script.read_text()}\n{proc.stderr.decode()[-3000:]}"
    )

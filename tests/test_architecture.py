"""The rules of docs/architecture.md, checked on the source: an acyclic import graph, codecs
behind their protocol, aiohttp and cattrs each in their one place, one module that starts tasks,
a sandbox independent of the SDK, and no oversized module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kling_async"


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _runtime_imports(name: str, path: Path) -> Iterator[str]:
    """Modules ``name`` imports when it runs (not those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = [
                f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES
            ]
            if node.module or not submodules:
                yield target
            yield from submodules  # ``from . import x`` imports submodule x


def _graph() -> dict[str, set[str]]:
    return {
        name: {m for m in _runtime_imports(name, path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def test_the_import_graph_is_acyclic() -> None:
    """No module of the package imports itself back, directly or through others."""
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*path, node, nxt])
                return True
            if nxt not in state and visit(nxt, [*path, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if node not in state and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_importing_the_package_runs_each_module_once() -> None:
    """``import kling_async`` loads cleanly in a fresh interpreter (no half-initialised
    module met through a cycle)."""
    code = "import kling_async, kling_async.cli, kling_async.testing; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def _importers_of(prefixes: tuple[str, ...]) -> set[str]:
    return {
        name
        for name, path in MODULES.items()
        if any(
            m == p or m.startswith(p + ".") for m in _runtime_imports(name, path) for p in prefixes
        )
    }


def test_codec_modules_are_imported_only_by_the_providers_package() -> None:
    """Above the codecs, modules use the Codec protocol and codec_for(), never a codec."""
    codecs = ("kling_async._providers.kling", "kling_async._providers.modellix")
    outside = {n for n in _importers_of(codecs) if not n.startswith("kling_async._providers")}
    assert outside == set()


def test_no_provider_checks_above_the_codecs() -> None:
    """No ``provider ==`` / ``!=`` and no ``isinstance(…Codec)`` outside ``_providers/``."""
    pattern = re.compile(r"provider\s*[!=]=|isinstance\([^)]*Codec")
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for name, path in MODULES.items()
        if not name.startswith("kling_async._providers")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def _words(identifier: str) -> set[str]:
    """The lower-case words of a snake_case, CamelCase or dotted name (``KlingCodec`` →
    ``{"kling", "codec"}``; the standard library's ``codecs`` is its own word)."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", identifier) if w}


def _identifiers(tree: ast.AST) -> Iterator[str]:
    """Every name a module's code spells: variables, attributes, arguments, definitions and
    imports (not comments or docstrings)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.arg):
            yield node.arg
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.alias):
            yield node.name
            yield node.asname or ""
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


# The codecs themselves, the wire calls that run them, and the seam (at most two modules) that
# turns them into the provider API's verbs and traits.
_CODEC_MODULES = {
    "kling_async._providers._codec",
    "kling_async._providers.kling",
    "kling_async._providers.kling_new",
    "kling_async._providers.modellix",
    "kling_async._http._wire",
}
_CODEC_SEAM = {"kling_async._providers", "kling_async._providers._api"}


def test_only_the_wire_layer_and_the_seam_name_the_codec() -> None:
    """Outside the codecs, ``_http/_wire.py`` and two seam modules, no module's code names a
    codec (``Codec``, ``codec``, ``codec_for``): the engine, the client and the command line
    speak the provider API's verbs and read its traits."""
    assert len(_CODEC_SEAM) <= 2
    naming = {
        name
        for name, path in MODULES.items()
        if not name.startswith("kling_async.testing")
        and any("codec" in _words(i) for i in _identifiers(ast.parse(path.read_text("utf-8"))))
    }
    assert naming - _CODEC_MODULES - _CODEC_SEAM == set()


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("aiohttp", {"kling_async._http._transport", "kling_async._http._callbacks"}),
        ("cattrs", {"kling_async._convert"}),
        ("opentelemetry", {"kling_async._engine._telemetry"}),
    ],
)
def test_foreign_libraries_stay_in_their_one_place(library: str, allowed: set[str]) -> None:
    """aiohttp only in the transport and the callback server (and the sandbox); cattrs only
    in the converter; opentelemetry only in the telemetry module (an optional extra)."""
    users = {n for n in _importers_of((library,)) if not n.startswith("kling_async.testing")}
    assert users <= allowed, sorted(users - allowed)


def test_only_the_scheduler_starts_tasks() -> None:
    """Within the library, task groups and ``start_soon`` appear in the scheduler only, and in
    the shared quota backend's ``run`` (its heartbeat, pub/sub and reconciliation loops, inside
    the one task the scheduler starts for it)."""
    pattern = re.compile(r"\bstart_soon\(|create_task_group\(|asyncio\.create_task\(")
    found = {
        name
        for name, path in MODULES.items()
        if not name.startswith("kling_async.testing")
        and pattern.search(
            "\n".join(
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if not line.lstrip().startswith(("#", "work (e.g."))
            )
        )
    }
    allowed = {
        "kling_async._engine._scheduler",
        "kling_async.cli._run",
        "kling_async.cli._queue",
        "kling_async._quota._redis",
        "kling_async._queue._redis_campaign",
    }
    assert found <= allowed, sorted(found)


def test_the_sandbox_imports_nothing_of_the_sdk() -> None:
    """``kling_async.testing`` reads raw JSON itself: it imports no SDK module."""
    sdk = {n for n in MODULES if not n.startswith("kling_async.testing") and n != "kling_async"}
    users = {
        name: sorted(m for m in _runtime_imports(name, path) if m in sdk)
        for name, path in MODULES.items()
        if name.startswith("kling_async.testing")
    }
    assert {k: v for k, v in users.items() if v} == {}


def test_no_module_is_over_600_lines() -> None:
    """Every module stays small enough to read (split it before adding more)."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md has a row for every module of the package outside testing/."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        path.name
        for name, path in MODULES.items()
        if not name.startswith("kling_async.testing")
        and path.name not in ("__main__.py",)
        and f"`{path.name}`" not in page
        and f"`{path.relative_to(PACKAGE)}`" not in page
        and f"{path.name}`" not in page
    ]
    assert missing == []

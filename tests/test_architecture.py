"""The rules of docs/architecture.md, checked on the source: an acyclic import graph, codecs
behind their protocol, aiohttp and cattrs each in their one place, one module that starts tasks,
a sandbox independent of the SDK, no oversized module, and the module table: one row per
module, each importing only what its row's "may import" cell names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
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


# -- the "may import" column ----------------------------------------------------------------
#
# docs/architecture.md's table has one row per module (a folder row such as `testing/` stands
# for every module under it). Its "may import" cell lists, separated by commas:
#   - module paths relative to kling_async/ in backticks (`_http/_wire.py`), or folders
#     (`_http/`: any module under it), each optionally followed by a note in parentheses;
#   - "everything below": any module of a row further down the table;
#   - "—": nothing of the package;
#   - anything else is prose (third-party libraries, notes) and permits nothing of the package.
# A row's modules may always import each other. Imports under ``if TYPE_CHECKING:`` are types
# only and are not checked.

PAGE = PACKAGE.parent / "docs" / "architecture.md"
_TICKED = re.compile(r"`([^`]+)`")
_PATH = re.compile(r"^(?:[\w.]+/)*(?:[\w.]+\.py|[\w.]+/)$")


@attrs.frozen
class Row:
    """One row of the table: its layer, its modules (paths), its "may import" cell."""

    number: int  # 1-based, in table order
    layer: str
    paths: tuple[str, ...]
    may_import: str


def _rows() -> list[Row]:
    """The rows of the module table in docs/architecture.md, in order."""
    rows: list[Row] = []
    layer = ""
    in_table = False
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["layer", "module"]:
            in_table = True
            continue
        if not in_table or not line.startswith("|"):
            if in_table and rows:
                break
            continue
        if set(cells[0]) <= {"-", ":"} and cells[0]:
            continue
        layer = cells[0] or layer
        paths = tuple(p for p in _TICKED.findall(cells[1]) if _PATH.match(p))
        rows.append(Row(len(rows) + 1, layer, paths, cells[3] if len(cells) > 3 else ""))
    return rows


def _module_path(name: str) -> str:
    """``kling_async._http._wire`` → ``_http/_wire.py``."""
    return str(MODULES[name].relative_to(PACKAGE))


def _covers(entry: str, path: str) -> bool:
    """Whether a "may import" entry (a module path or a folder) covers module ``path``."""
    return path.startswith(entry) if entry.endswith("/") else path == entry


def _owner(rows: list[Row], path: str) -> Row | None:
    """The row that holds module ``path`` (its own path, else the deepest folder row)."""
    exact = [r for r in rows if path in r.paths]
    if exact:
        return exact[0]
    folders = [(p, r) for r in rows for p in r.paths if p.endswith("/") and path.startswith(p)]
    return max(folders, key=lambda pr: len(pr[0]))[1] if folders else None


def _allowed(rows: list[Row], row: Row) -> list[str]:
    """The module paths and folders ``row`` may import (its own modules included)."""
    cell = row.may_import
    entries = [p for p in _TICKED.findall(_without_notes(cell)) if _PATH.match(p)]
    if "everything below" in cell:
        entries += [p for r in rows if r.number > row.number for p in r.paths]
    return [*row.paths, *entries]


def _without_notes(cell: str) -> str:
    """The cell without its parenthesised notes (which name things, but permit nothing)."""
    while (stripped := re.sub(r"\([^()]*\)", "", cell)) != cell:
        cell = stripped
    return cell


def _imports_by_path() -> dict[str, list[str]]:
    """Module path → the package modules it imports at run time, outside testing/."""
    graph = _graph()
    return {
        _module_path(name): sorted(_module_path(m) for m in graph[name])
        for name in sorted(graph)
        if not name.startswith("kling_async.testing")
    }


def _needs_a_row(path: str, imports: list[str]) -> bool:
    """Every module has a row, but for a layer folder's empty ``__init__.py``."""
    return not (path.endswith("__init__.py") and "/" in path and not imports)


def test_the_table_has_one_row_per_module() -> None:
    """Every module outside testing/ (an empty layer-folder __init__.py aside) has exactly one
    row in docs/architecture.md, and every row's paths name modules that exist."""
    rows = _rows()
    imports = _imports_by_path()
    known = set(imports) | {_module_path(n) for n in MODULES}
    problems = []
    for path, used in imports.items():
        holders = [r.number for r in rows if path in r.paths]
        if not holders and _needs_a_row(path, used) and _owner(rows, path) is None:
            cell = ", ".join(f"`{m}`" for m in used) or "—"
            problems.append(
                f"no row for `{path}`: add `| | `{path}` | <what it owns> | {cell} |` "
                "in its layer of the table in docs/architecture.md"
            )
        if len(holders) > 1:
            problems.append(f"`{path}` has rows {holders}; keep one")
    for row in rows:
        for path in row.paths:
            if path.endswith(".py") and path not in known:
                problems.append(f"row {row.number} names `{path}`, which does not exist")
            if path.endswith("/") and not any(k.startswith(path) for k in known):
                problems.append(f"row {row.number} names folder `{path}`, which does not exist")
    assert rows, "no module table found in docs/architecture.md"
    assert problems == [], "\n".join(problems)


def test_may_import_names_only_modules_that_exist() -> None:
    """Each "may import" cell names package modules by their paths (`_http/_wire.py`,
    `_http/`): an old flat name such as `_cli_parser` or a moved module is caught."""
    known = {_module_path(n) for n in MODULES}
    problems = []
    for row in _rows():
        for token in _TICKED.findall(row.may_import):
            where = f"row {row.number} ({', '.join(row.paths)}), may import"
            if _PATH.match(token):
                exists = token in known or (
                    token.endswith("/") and any(k.startswith(token) for k in known)
                )
                if not exists:
                    problems.append(f"{where}: `{token}` does not exist")
            elif re.fullmatch(r"_[a-z]\w*", token):  # an old flat module name
                problems.append(f"{where}: `{token}` is not a path; write it as `<folder>/x.py`")
    assert problems == [], "\n".join(problems)


def test_every_module_imports_only_what_its_row_allows() -> None:
    """A module's run-time imports of package modules are within its row's "may import" cell
    of docs/architecture.md (a path, a folder, or "everything below" it in the table)."""
    rows = _rows()
    problems = []
    for path, used in _imports_by_path().items():
        row = _owner(rows, path)
        if row is None:
            continue  # test_the_table_has_one_row_per_module names it
        allowed = _allowed(rows, row)
        extra = [m for m in used if not any(_covers(a, m) for a in allowed)]
        if extra:
            names = ", ".join(f"`{m}`" for m in extra)
            problems.append(
                f"`{path}` imports {names}: name it in the 'may import' cell of row "
                f"{row.number} ({', '.join(row.paths)}) in docs/architecture.md, now: "
                f"{row.may_import!r}"
            )
    assert problems == [], "\n".join(problems)

"""The error tree drawn in docs/errors.md and in the _errors module docstring is the real one."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import kling_async as ka
from kling_async import _errors

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
_NODE = re.compile(r"^(?P<indent>[\s│]*)(?:[├└]── )?(?P<name>[A-Z]\w+)\b")


def parse_tree(text: str) -> dict[str, str | None]:
    """``{class name: parent name}`` from a box-drawing tree (the root's parent is None)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _NODE.match(line)
        if match is None or ("── " not in line and parents):
            continue
        depth = len(match["indent"]) + (4 if "── " in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def tree_in_doc() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("```text", 1)[1].split("```", 1)[0]


def tree_in_docstring() -> str:
    doc = _errors.__doc__ or ""
    return doc.split("::", 1)[1].split("\n\n", 2)[1]


def real_tree() -> dict[str, str | None]:
    classes = {
        name: obj
        for name in ka.__all__
        if isinstance(obj := getattr(ka, name), type) and issubclass(obj, ka.KlingError)
    }
    parents: dict[str, str | None] = {}
    for name, cls in classes.items():
        bases = [b.__name__ for b in cls.__bases__ if issubclass(b, ka.KlingError)]
        parents[name] = bases[0] if bases else None
    return parents


@pytest.mark.parametrize("source", [tree_in_doc, tree_in_docstring], ids=["docs", "docstring"])
def test_drawn_tree_is_the_class_tree(source: object) -> None:
    """Every exported error appears under its real parent, and nothing else is drawn."""
    assert callable(source)
    assert parse_tree(source()) == real_tree()


def test_every_error_has_a_row_in_the_table() -> None:
    """docs/errors.md says what each exported error carries and what the SDK does about it."""
    text = DOC.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)`", text, flags=re.MULTILINE))
    missing = set(real_tree()) - rows - {"KlingError"}
    assert not missing


def _package_modules() -> list[str]:
    """Every module of the SDK (the sandbox, ``testing/``, stands apart)."""
    root = Path(ka.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if "testing" in parts or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_exception_class_is_defined_in_the_errors_module() -> None:
    """No module but _errors defines an exception class: the SDK's errors and its internal
    signals all live in one module (others import them from there)."""
    elsewhere = sorted(
        f"{name}.{cls.__name__}"
        for name in _package_modules()
        for cls in vars(importlib.import_module(name)).values()
        if isinstance(cls, type)
        and issubclass(cls, BaseException)
        and cls.__module__ == name
        and name != _errors.__name__
    )
    assert elsewhere == []


def test_exported_errors_are_the_errors_modules() -> None:
    """Each error kling_async exports is the class of the same name in _errors."""
    exported = [n for n in ka.__all__ if isinstance(getattr(ka, n), type)]
    errors = [n for n in exported if issubclass(getattr(ka, n), BaseException)]
    assert {"DownloadError", "JournalError", "JournalConflictError"} <= set(errors)
    assert all(getattr(ka, n) is getattr(_errors, n) for n in errors)

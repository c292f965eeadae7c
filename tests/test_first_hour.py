"""What a new user meets first: ``kling-async --version`` answers, and the README's stated
Python version is the one the package requires and its classifiers name."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import kling_async as ka

ROOT = Path(__file__).resolve().parent.parent


def test_version_flag_prints_the_package_version() -> None:
    """``kling-async --version`` prints the program name and version, exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kling-async {ka.__version__}"


def test_readme_top_states_the_required_python() -> None:
    """The README says near its top the Python version pyproject requires, and the
    classifiers list that version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    minimum = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"])
    assert minimum is not None
    top = (ROOT / "README.md").read_text(encoding="utf-8")[:1500]
    assert f"Python ≥ {minimum[1]}" in top
    assert f"Programming Language :: Python :: {minimum[1]}" in project["classifiers"]
    assert project["version"] == ka.__version__

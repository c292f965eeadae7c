"""The public surface: kling_async.__all__ is sorted, resolves, and every class is documented."""

from __future__ import annotations

import inspect

import pytest

import kling_async as ka
from kling_async import quota, testing


def test_all_is_sorted_and_unique() -> None:
    """__all__ is in plain sorted order (as ruff's RUF022 keeps it) with no duplicates."""
    assert ka.__all__ == sorted(ka.__all__)
    assert len(set(ka.__all__)) == len(ka.__all__)


@pytest.mark.parametrize("name", ka.__all__)
def test_every_public_name_resolves(name: str) -> None:
    """Each name in __all__ is an attribute of the package."""
    assert getattr(ka, name, None) is not None


@pytest.mark.parametrize("name", [n for n in ka.__all__ if inspect.isclass(getattr(ka, n, None))])
def test_every_exported_class_has_its_own_docstring(name: str) -> None:
    """Each exported class has a non-empty docstring of its own (not inherited)."""
    cls = getattr(ka, name)
    doc = cls.__dict__.get("__doc__")
    assert isinstance(doc, str)
    assert doc.strip()


def test_star_import_gives_exactly_all() -> None:
    """`from kling_async import *` binds exactly the names in __all__."""
    namespace: dict[str, object] = {}
    exec("from kling_async import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(ka.__all__)


def test_version_is_exposed() -> None:
    """kling_async.__version__ is a version string."""
    assert isinstance(ka.__version__, str)
    assert ka.__version__.count(".") >= 1


def test_quota_module_all_is_sorted_and_resolves() -> None:
    """kling_async.quota.__all__ is sorted and unique, and each of its names resolves."""
    assert quota.__all__ == sorted(set(quota.__all__))
    assert all(getattr(quota, name, None) is not None for name in quota.__all__)


def test_quota_module_star_import_gives_exactly_all() -> None:
    """`from kling_async.quota import *` binds exactly the implementer types of __all__."""
    namespace: dict[str, object] = {}
    exec("from kling_async.quota import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(quota.__all__)
    expected = {"Lease", "LocalQuota", "PoolSnapshot", "QuotaBackend", "QuotaContext"}
    assert expected <= set(namespace)


@pytest.mark.parametrize("name", quota.__all__)
def test_top_level_quota_names_are_the_quota_modules(name: str) -> None:
    """Each kling_async.quota name is also the very same object at the top level (an alias)."""
    assert getattr(ka, name) is getattr(quota, name)
    assert name in ka.__all__


def test_the_sandbox_pool_figures_have_a_name_of_their_own() -> None:
    """The sandbox's per-pool figures are `SandboxPoolStats`, apart from the client's
    `PoolStats`; the old sandbox name stays an alias, the only name both surfaces share."""
    assert testing.SandboxPoolStats is testing.PoolStats
    assert testing.SandboxPoolStats is not ka.PoolStats
    assert set(ka.__all__) & set(testing.__all__) == {"PoolStats"}

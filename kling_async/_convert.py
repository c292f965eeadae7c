"""The SDK's one cattrs ``Converter``.

Every structuring hook is registered in :func:`configure_converter`; wire renames live in the
provider codecs' wire classes, and time conversion (epoch milliseconds → aware UTC ``datetime``)
happens here and nowhere else. Unknown fields in responses are ignored, so new server fields
never break users. cattrs' exceptions are translated to :class:`ResponseFormatError` in
:func:`structure`, the one place they are caught.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import cattrs

from ._errors import ResponseFormatError

__all__ = ["configure_converter", "converter", "ms_to_datetime", "structure", "units_of"]

T = TypeVar("T")


def ms_to_datetime(value: int | float | str | None) -> dt.datetime | None:
    """Unix epoch milliseconds → aware UTC datetime (``None`` passes through)."""
    if value is None or value == "":
        return None
    return dt.datetime.fromtimestamp(float(value) / 1000.0, tz=dt.UTC)


def units_of(value: Any) -> decimal.Decimal | None:
    """A charge in units as an exact ``Decimal`` (``"8"``, ``"6.5"``, ``8``), or ``None`` for
    a missing, empty or non-numeric value. Kling sends ``final_unit_deduction`` as a string so
    that fractional units survive; a float would turn ``"0.1"`` into ``0.1000000000000000055``."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        units = decimal.Decimal(value if isinstance(value, str | int) else str(value))
    except (decimal.InvalidOperation, TypeError, ValueError):
        return None
    return units if units.is_finite() else None


def _structure_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        return dt.datetime.fromisoformat(value)
    return ms_to_datetime(value)


def _structure_units(value: Any) -> decimal.Decimal:
    units = units_of(value)
    if units is None:
        raise ValueError(f"expected a number of units, got {value!r}")
    return units


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _is_optional(tp: Any) -> bool:
    """Whether ``tp`` is ``X | None`` (``Optional[X]``) for one type ``X``."""
    args = typing.get_args(tp)
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return union and len(args) == 2 and type(None) in args


def _optional_factory(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    """Hooks for ``X | None`` that find ``X``'s hook once, when the hook is made.

    cattrs' own ``X | None`` hook looks ``X``'s hook up again on every value it structures,
    which was most of the time spent parsing a task answer (all its fields are optional).
    """

    def factory(union: Any) -> Callable[[Any, Any], Any]:
        first, second = union.__args__
        inner = second if first is type(None) else first
        hook = conv.get_structure_hook(inner)

        def structure_optional(value: Any, _: Any) -> Any:
            return None if value is None else hook(value, inner)

        return structure_optional

    return factory


def configure_converter(conv: cattrs.Converter) -> None:
    """Register every hook the SDK needs on ``conv``.

    - ``str`` fields accept numbers (ids and unit counts arrive as either).
    - ``dt.datetime`` fields accept epoch milliseconds (int, float or numeric string) or an
      ISO 8601 string (the journal's form), and unstructure to ISO 8601.
    - ``Decimal`` fields (units) accept strings and numbers, and unstructure to strings, so a
      journal keeps them exact.
    - ``X | None`` fields use ``X``'s hook, found once per type (not once per value).
    """
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(dt.datetime, lambda v, _: _structure_datetime(v))
    conv.register_unstructure_hook(dt.datetime, lambda v: v.isoformat())
    conv.register_structure_hook(decimal.Decimal, lambda v, _: _structure_units(v))
    conv.register_unstructure_hook(decimal.Decimal, str)
    conv.register_structure_hook_factory(_is_optional, _optional_factory(conv))


converter = cattrs.Converter(forbid_extra_keys=False)
configure_converter(converter)


def structure(data: Any, cls: type[T], what: str) -> T:
    """Structure wire JSON into ``cls``.

    Raises:
        ResponseFormatError: the JSON does not have the documented shape; ``what`` names it.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        detail = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ResponseFormatError(f"malformed {what}: {detail}") from exc

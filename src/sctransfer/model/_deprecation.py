"""Renamed keyword arguments: the old name keeps working for a while, with a :class:`DeprecationWarning`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

from sctransfer._validation import user_stacklevel

F = TypeVar("F", bound=Callable)


def renamed_argument(old: str, new: str) -> Callable[[F], F]:
    """Decorator: accept keyword ``old`` as ``new``, with a :class:`DeprecationWarning`.

    Raises
    ------
    TypeError
        When a call passes both names.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{function.__qualname__}() got both {old}= and {new}=; pass {new}= only.")
                warnings.warn(
                    f"{function.__qualname__}({old}=...) is deprecated and will be removed; use {new}=... "
                    "(the scvi-tools name, which also takes a MuData).",
                    DeprecationWarning,
                    stacklevel=user_stacklevel(),
                )
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

"""Record: the base of the core's small immutable values, written out instead of dataclasses."""

from __future__ import annotations

from typing import Any


class Record:
    """A value whose fields are its ``__slots__``, set once by the subclass's ``__init__``
    (through ``object.__setattr__``): immutable, compared, hashed, shown and pickled by its
    fields, as ``@dataclass(frozen=True, slots=True)`` made them.

    Why not the dataclass: Python 3.11 generates and compiles six methods per frozen dataclass
    when its module is imported (about 0.5 ms a class), and the first ``rangeio.open`` imports
    dozens (``benchmarks/startup.py``). A hand-written ``__init__`` is compiled once, into the
    bytecode cache. Public classes (Timeout, RetryPolicy, ByteRange, ...) stay dataclasses, so
    that ``dataclasses.replace`` keeps working on them."""

    __slots__ = ()

    def _fields(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields()])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())

    def __setstate__(self, state: Any) -> None:
        # What a frozen dataclass of the same name pickled (its field values, in order): a
        # pickle made by an earlier rangeio still loads.
        for name, value in zip(self._fields(), state, strict=True):
            object.__setattr__(self, name, value)

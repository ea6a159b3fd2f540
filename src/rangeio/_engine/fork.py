"""Weak registries of live objects whose methods run around every os.fork()."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any


class ForkHooks:
    """The live objects of one kind, and the names of their methods to call before a fork, then
    in the parent and in the child after it (POSIX only: elsewhere nothing is registered). The
    objects are held weakly, so registering one never keeps it alive."""

    def __init__(
        self,
        *,
        before: str | None = None,
        after_in_parent: str | None = None,
        after_in_child: str | None = None,
    ) -> None:
        self._objects: weakref.WeakSet[Any] = weakref.WeakSet()
        methods = {
            "before": before,
            "after_in_parent": after_in_parent,
            "after_in_child": after_in_child,
        }
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(
                **{when: self._each(name) for when, name in methods.items() if name}
            )

    def add(self, obj: Any) -> None:
        self._objects.add(obj)

    def discard(self, obj: Any) -> None:
        self._objects.discard(obj)

    def __len__(self) -> int:
        return len(self._objects)

    def _each(self, method: str) -> Callable[[], None]:
        def hook() -> None:
            # A copy: a hook may drop the last reference to another registered object.
            for obj in list(self._objects):
                getattr(obj, method)()

        return hook

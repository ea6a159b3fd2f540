"""Names a package loads on first use (PEP 562): the module ``__getattr__`` and ``__dir__``."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs more than this whole module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_names(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``namespace`` (its globals) lacks
    the names in ``where`` until first asked for. ``where`` maps a name to ``"module:attr"``
    (an attribute of that module) or ``"module"`` (the module itself). A resolved name is
    stored in ``namespace``, so only its first use goes through ``__getattr__``."""

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        # __import__, not importlib.import_module: it goes through the interpreter's import
        # statement machinery, so `python -X importtime` still shows what each name costs.
        __import__(module_name)
        module = sys.modules[module_name]
        value = getattr(module, attr) if attr else module
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__

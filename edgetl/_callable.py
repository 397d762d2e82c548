"""Let `edgetl.train(...)`, `edgetl.export(...)` and `edgetl.verify(...)` call the stage of that name.

Each of those names is a module (`edgetl.export.FORMATS`, `from edgetl.train import TrainOptions`)
and, as the README's Python API shows, a function. A package attribute cannot be both: the import
system rebinds `edgetl.export` to the submodule whenever it is first imported, so a function
bound there would be replaced depending on import order. Instead the module itself is callable
and runs its namesake function, whatever was imported first. Setting a module's `__class__` to a
`ModuleType` subclass is the documented way to customise a module (Python reference, "Customizing
module attribute access").
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _StageModule(types.ModuleType):
    """A module whose call runs its namesake function: `edgetl.export(...)` is `edgetl.export.export(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the module `module_name` (already in `sys.modules`) callable as its namesake function."""
    sys.modules[module_name].__class__ = _StageModule

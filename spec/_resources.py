"""Where provspec's data files are, installed or in a checkout.

The schemas and fixtures sit at the top of the repository. A wheel carries them inside the
`spec` package, under `_data/` (see `force-include` in pyproject.toml), so an installed
provspec works from any directory. In a source checkout (an editable install) `_data/` does
not exist and the top-level folders are used instead.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from wire.errors import ProvspecError

__all__ = ["data_dir", "requirements_dir"]

_SHIPPED = ("schemas", "fixtures")


def data_dir(name: str) -> Traversable:
    """The `schemas` or `fixtures` tree, from the installed wheel or else the checkout."""
    if name not in _SHIPPED:
        raise ValueError(f"unknown data directory {name!r}; expected one of {_SHIPPED}")
    package = resources.files("spec")
    shipped = package / "_data" / name
    if shipped.is_dir():
        return shipped
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise ProvspecError(
        f"provspec's {name!r} data is missing: looked in {shipped} and {checkout}. "
        "Reinstall provspec (pip install provspec) or run from a complete checkout."
    )


def requirements_dir() -> Traversable:
    """The requirement registry files (`spec/requirements/*.toml`)."""
    return resources.files("spec") / "requirements"

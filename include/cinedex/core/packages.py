"""Files that ship inside installed packages (models, dictionaries, sample media), found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_data(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package (importing some runs code that
    needs what is not installed, or loads a model)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise FileNotFoundError(path)
    return path

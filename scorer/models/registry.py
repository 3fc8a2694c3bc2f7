"""The architecture registry: the stored ``arch`` string -> the Model class that rebuilds it."""

from __future__ import annotations

from typing import TypeVar

from scorer.errors import InvalidWeights
from scorer.models.base import Model
from scorer.models.weights import ModelWeights

_REGISTRY: dict[str, type[Model]] = {}
M = TypeVar("M", bound=type[Model])


def register(cls: M) -> M:
    """Class decorator: make ``cls`` the builder for ``cls.arch`` (one class per arch)."""
    arch = getattr(cls, "arch", None)
    if not isinstance(arch, str) or not arch:
        raise TypeError(f"{cls.__name__} needs a non-empty str class attribute 'arch' to be registered")
    existing = _REGISTRY.get(arch)
    if existing is not None and existing is not cls:
        raise ValueError(f"arch {arch!r} is already registered to {existing.__name__}; refusing {cls.__name__}")
    _REGISTRY[arch] = cls
    return cls


def archs() -> tuple[str, ...]:
    """Every registered architecture name, sorted."""
    return tuple(sorted(_REGISTRY))


def get(arch: str) -> type[Model]:
    """The Model class for ``arch``; an unknown name raises InvalidWeights listing the valid ones."""
    try:
        return _REGISTRY[arch]
    except (KeyError, TypeError):
        valid = ", ".join(archs()) or "(none registered)"
        raise InvalidWeights(f"unknown model arch {arch!r}; valid: {valid}") from None


def build(weights: ModelWeights) -> Model:
    """Validate ``weights`` completely and return a ready Model; anything wrong raises InvalidWeights."""
    if not isinstance(weights, ModelWeights):
        raise InvalidWeights(f"build needs ModelWeights; got {type(weights).__name__}")
    return get(weights.arch)(weights)

"""The model store boundary: what callers may rely on, whatever database sits behind it.

The API is synchronous; async callers use ``asyncio.to_thread``. ``None`` always means "no such row";
a failed read raises (StoreUnavailable / StoreError) and is never reported as missing.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from scorer.models import ModelWeights

PublishItem = tuple[str, "ModelWeights", "dict[str, Any] | None", "dict[str, Any] | None"]
"""(segment, weights, metrics, stats) for ``publish_many``."""

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called from the caller's thread as bulk work advances."""


@dataclass(frozen=True)
class ActiveModel:
    """One row of ``active_models``: what a segment serves (version) and tries (canary, shadow)."""

    model: str
    segment: str
    version: int | None
    canary_version: int | None
    canary_fraction: float | None
    shadow_version: int | None
    updated_at: datetime | None
    outside_at: datetime | None = None
    """When the row's last change was written outside scorer (a raw CQL UPDATE), else None."""


@dataclass(frozen=True)
class VersionInfo:
    """A complete, published version's description (its weights are read with ``load``)."""

    model: str
    segment: str
    version: int
    arch: str
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...] | None
    metadata: Mapping[str, Any]
    metrics: dict[str, Any]
    stats: dict[str, Any]
    size_bytes: int
    n_chunks: int
    checksum: str
    created_at: datetime | None
    author: str | None


@dataclass(frozen=True)
class Activation:
    """One entry of the activation log.

    ``action`` is one of activate, rollback, canary, promote, release, retire (a canary ended without
    promotion), shadow (``canary_version`` holds the shadow version, None when cleared); ``from_version``/
    ``to_version`` are the primary version before and after (equal for a canary, retire or shadow),
    ``release_id`` ties the rows of one release.
    """

    model: str
    segment: str
    at: datetime
    actor: str
    action: str
    from_version: int | None
    to_version: int | None
    canary_version: int | None = None
    canary_fraction: float | None = None
    reason: str | None = None
    release_id: str | None = None


@runtime_checkable
class ModelStore(Protocol):
    """Versions, weights and live pointers of per-segment models."""

    def publish(self, model: str, segment: str, weights: ModelWeights, *, metrics: dict[str, Any] | None = None,
                stats: dict[str, Any] | None = None, author: str | None = None, activate: bool = False,
                reason: str | None = None) -> int: ...

    def publish_many(self, model: str, items: Iterable[PublishItem], *, author: str | None = None,
                     activate: bool = False, reason: str | None = None,
                     progress: Progress | None = None) -> dict[str, int]: ...

    def versions(self, model: str, segment: str | None = None) -> list[VersionInfo]: ...

    def version_info(self, model: str, segment: str, version: int) -> VersionInfo | None: ...

    def load(self, model: str, segment: str, version: int | None = None) -> ModelWeights: ...

    def load_many(self, keys: Iterable[tuple[str, str, int]]
                  ) -> dict[tuple[str, str, int], ModelWeights | Exception]: ...

    def active(self, model: str, segment: str | None = None) -> dict[str, ActiveModel]: ...

    def models(self) -> list[str]: ...

    def activate(self, model: str, segment: str, version: int, *, actor: str | None = None,
                 reason: str | None = None) -> Activation: ...

    def rollback(self, model: str, segment: str, *, actor: str | None = None,
                 reason: str | None = None) -> Activation: ...

    def canary(self, model: str, segment: str, version: int, fraction: float, *, actor: str | None = None,
               reason: str | None = None) -> Activation: ...

    def promote(self, model: str, segment: str, *, actor: str | None = None,
                reason: str | None = None) -> Activation: ...

    def retire_canary(self, model: str, segment: str, *, actor: str | None = None,
                      reason: str | None = None) -> Activation: ...

    def shadow(self, model: str, segment: str, version: int | None, *, actor: str | None = None,
               reason: str | None = None) -> Activation: ...

    def release(self, model: str, mapping: dict[str, int], *, actor: str | None = None,
                reason: str | None = None) -> str: ...

    def prune(self, model: str, segment: str | None = None, *, keep: int) -> list[tuple[str, int]]: ...

    def activations(self, model: str, segment: str | None = None, limit: int = 50) -> list[Activation]: ...

    def close(self) -> None: ...


def default_actor() -> str:
    """``user@host`` of whoever runs this process, for the activation log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER, e.g. in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def active_version(store: ModelStore, model: str, segment: str) -> int:
    """The segment's live version; NotFound when it has none (the store's own errors pass through)."""
    from scorer.errors import NotFound

    pointer = store.active(model, segment).get(segment)
    if pointer is None or pointer.version is None:
        raise NotFound(f"{model}/{segment} has no active version")
    return pointer.version

"""Ensembles of published versions: compose one, check its references, load it, and protect its members.

``compose`` publishes an ``ensemble`` version whose members are fixed ``(model, segment, version)`` references
with their checksums (a member's own pointer changes never change the ensemble); ``blend`` is the
"segment + global" case, a weighted mean of a segment's model and the model's global one. The checks run
against any :class:`~scorer.store.ModelStore` before anything is written, and every store runs them again
when it publishes ensemble weights. :class:`MemberLoader` builds each referenced member once, verifies it
against the manifest's checksum and binds it; the worker's cache and ``load_model`` use it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scorer.errors import ChecksumMismatch, ConfigError, InvalidWeights, NotFound
from scorer.models import Model, ModelWeights, build
from scorer.models.ensemble import COMBINES, META_ARCHS, EnsembleModel, MemberRef, stack_feature_names

if TYPE_CHECKING:
    from scorer.store import ModelStore, VersionInfo

log = logging.getLogger(__name__)

ARCH = "ensemble"
MAX_DEPTH = 4
"""Ensembles of ensembles, by reference, at most this deep (a longer chain is refused like a cycle)."""
GLOBAL_SEGMENT = "__global__"
Member = tuple[str, str, int]


def parse_member(text: str, model: str) -> Member:
    """``[MODEL/]SEGMENT:VERSION`` -> (model, segment, version); the model defaults to the ensemble's."""
    head, sep, number = str(text).rpartition(":")
    if not sep or not head or not number.strip().isdigit() or int(number) < 1:
        raise ConfigError(f"member {text!r} must be [MODEL/]SEGMENT:VERSION with a version >= 1")
    member_model, slash, segment = head.partition("/")
    if not slash:
        member_model, segment = model, head
    return member_model, segment, int(number)


def where(model: str, segment: str, version: int | None = None) -> str:
    return f"{model}/{segment}" + ("" if version is None else f" version {version}")


def references(metadata: Any) -> list[MemberRef]:
    """The referenced members recorded in an ensemble's metadata (malformed entries are skipped here)."""
    members = metadata.get("members") if hasattr(metadata, "get") else None
    out = []
    for spec in members if isinstance(members, list) else ():
        if isinstance(spec, dict) and spec.get("kind") == "ref":
            try:
                out.append(MemberRef(str(spec["model"]), str(spec["segment"]), int(spec["version"]),
                                     str(spec["checksum"])))
            except (KeyError, TypeError, ValueError):
                continue
    return out


# ------------------------------------------------------------------------------------------ compose


def compose_weights(infos: Sequence[VersionInfo], *, combine: str = "mean", weights: Sequence[float] | None = None,
                    meta: ModelWeights | None = None, passthrough: bool = False,
                    metadata: dict[str, Any] | None = None) -> ModelWeights:
    """The ensemble weights over these published versions (pure; refuses members that do not fit together)."""
    if combine not in COMBINES:
        raise ConfigError(f"combine must be one of {', '.join(COMBINES)}; got {combine!r}")
    if not infos:
        raise ConfigError("an ensemble needs at least one member")
    first = infos[0]
    keys = [(i.model, i.segment, i.version) for i in infos]
    if len(set(keys)) != len(keys):
        raise ConfigError("a member version is given twice")
    head = where(first.model, first.segment, first.version)
    for info in infos[1:]:
        other = where(info.model, info.segment, info.version)
        if tuple(info.feature_names) != tuple(first.feature_names):
            raise ConfigError(f"members have different feature lists: {head} has {list(first.feature_names)[:8]}, "
                              f"{other} has {list(info.feature_names)[:8]}")
        if (info.classes is None) != (first.classes is None):
            raise ConfigError(f"members have different tasks: {head} is a "
                              f"{'regressor' if first.classes is None else 'classifier'}, {other} is not")
        if info.classes is not None and tuple(info.classes) != tuple(first.classes or ()):
            raise ConfigError(f"members have different classes: {head} has {list(first.classes or ())}, {other} has "
                              f"{list(info.classes)}")
    arrays: dict[str, np.ndarray] = {}
    meta_data: dict[str, Any] = dict(metadata or {})
    meta_data.update(combine=combine, members=[
        {"kind": "ref", "model": i.model, "segment": i.segment, "version": i.version, "checksum": i.checksum}
        for i in infos])
    if combine == "stack":
        if weights is not None:
            raise ConfigError("stacking takes no --weights: its meta-model weighs the members")
        if meta is None:
            raise ConfigError("combine 'stack' needs a meta-model (a linear or logistic ModelWeights, --meta FILE)")
        if meta.arch not in META_ARCHS:
            raise ConfigError(f"the meta-model must be {' or '.join(META_ARCHS)}; got arch {meta.arch!r}")
        expect = stack_feature_names(len(infos), first.classes, first.feature_names if passthrough else ())
        if len(meta.feature_names) != len(expect):
            raise ConfigError(f"the meta-model takes {len(meta.feature_names)} inputs; stacking {len(infos)} members"
                              f"{' with passthrough' if passthrough else ''} gives {len(expect)} "
                              f"({', '.join(expect[:8])})")
        arrays.update({f"meta/{k}": v for k, v in meta.arrays.items()})
        meta_data["stack"] = {"arch": meta.arch, "metadata": dict(meta.metadata), "passthrough": bool(passthrough)}
    else:
        w = np.ones(len(infos)) if weights is None else np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(infos),):
            raise ConfigError(f"{w.size} weights for {len(infos)} members; give one weight per member")
        if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ConfigError(f"weights must be finite and >= 0 with a positive sum; got {w.tolist()}")
        arrays["weights"] = w
    out = ModelWeights(ARCH, tuple(first.feature_names), arrays, first.classes, meta_data)
    try:
        build(out)
    except InvalidWeights as exc:
        raise ConfigError(f"the ensemble does not build: {exc}") from None
    return out


def compose(store: ModelStore, model: str, segment: str, members: Sequence[str | Member], *,
            combine: str = "mean", weights: Sequence[float] | None = None, meta: ModelWeights | None = None,
            passthrough: bool = False, activate: bool = False, author: str | None = None,
            reason: str | None = None, metadata: dict[str, Any] | None = None) -> int:
    """Publish an ensemble version of ``model``/``segment`` over published member versions; its number.

    ``members`` are ``(model, segment, version)`` or ``"[MODEL/]SEGMENT:VERSION"`` text. Refused before
    anything is written: a missing member version, members with different features, tasks or classes,
    weights that do not match the members, a cycle.
    """
    keys = [parse_member(m, model) if isinstance(m, str) else (str(m[0]), str(m[1]), int(m[2])) for m in members]
    infos = []
    for key in keys:
        info = store.version_info(*key)
        if info is None:
            raise NotFound(f"ensemble {where(model, segment)}: member {where(*key)} does not exist (or is not "
                           "complete)")
        infos.append(info)
    ensemble = compose_weights(infos, combine=combine, weights=weights, meta=meta, passthrough=passthrough,
                               metadata=metadata)
    return store.publish(model, segment, ensemble, author=author, activate=activate, reason=reason)


def blend(store: ModelStore, model: str, segment: str, version: int, *, global_version: int, weight: float,
          global_segment: str = GLOBAL_SEGMENT, activate: bool = False, author: str | None = None,
          reason: str | None = None) -> int:
    """"Segment + global": ``(1 - weight) * segment model + weight * global model`` as a new ensemble version."""
    if not 0.0 < weight < 1.0:
        raise ConfigError(f"the global model's weight must be strictly between 0 and 1; got {weight!r}")
    return compose(store, model, segment, [(model, segment, version), (model, global_segment, global_version)],
                   weights=[1.0 - weight, weight], activate=activate, author=author, reason=reason,
                   metadata={"blend": {"global_segment": global_segment, "global_weight": weight}})


def check_references(store: ModelStore, model: str, segment: str, weights: ModelWeights) -> None:
    """Refuse ensemble weights whose referenced members are missing, differ from the manifest or lead in a
    cycle (the stores call this before they write ensemble weights)."""
    if weights.arch != ARCH:
        return
    refs = references(weights.metadata)
    own = [ref for ref in refs if (ref.model, ref.segment) == (model, segment)]
    if own:
        newest = max((info.version for info in store.versions(model, segment)), default=0)
        for ref in own:
            if ref.version > newest:
                raise ConfigError(f"ensemble {where(model, segment)}: member {ref} would be this very version or a "
                                  f"later one (newest is {newest}); an ensemble cannot reference itself")
    _walk(store, where(model, segment) + " (new version)", refs, weights.feature_names, weights.classes, ())


def _key(ref: MemberRef) -> Member:
    return ref.model, ref.segment, ref.version


def _walk(store: ModelStore, what: str, refs: list[MemberRef], features: Sequence[str], classes: Any,
          path: tuple[str, ...]) -> None:
    path = (*path, what)
    for ref in refs:
        if str(ref) in path:
            chain = " -> ".join((*path, str(ref)))
            raise ConfigError(f"ensemble {path[0]}: member {ref} leads back to itself ({chain})")
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"ensemble {path[0]}: members nest more than {MAX_DEPTH} deep ({' -> '.join(path)})")
        info = store.version_info(*_key(ref))
        if info is None:
            raise NotFound(f"ensemble {path[0]}: member {ref} does not exist (or is not complete)")
        if info.checksum != ref.checksum:
            raise ChecksumMismatch(f"ensemble {path[0]}: member {ref} has sha256 {info.checksum[:16]}..., the "
                                   f"manifest records {ref.checksum[:16]}...")
        if tuple(info.feature_names) != tuple(features):
            raise ConfigError(f"ensemble {path[0]}: member {ref} has features {list(info.feature_names)[:8]}; "
                              f"the ensemble's are {list(features)[:8]}")
        if (info.classes is None) != (classes is None) or (classes is not None and tuple(info.classes or ())
                                                            != tuple(classes)):
            raise ConfigError(f"ensemble {path[0]}: member {ref} has classes {info.classes}; the ensemble's are "
                              f"{None if classes is None else list(classes)} (members need the same task and classes)")
        if info.arch == ARCH:
            _walk(store, str(ref), references(info.metadata), features, classes, path)


# ------------------------------------------------------------------------------------------ loading


class MemberLoader:
    """Loads and binds referenced members, each built once while any ensemble uses it.

    The memo is keyed by (model, segment, version, checksum) and holds models weakly: a member shared by
    several ensembles is one object, released when the last ensemble using it is gone.
    """

    def __init__(self) -> None:
        self._memo: weakref.WeakValueDictionary[tuple[str, str, int, str], Model] = weakref.WeakValueDictionary()
        self.loads = 0
        """Member versions read from the store so far (what a test may count)."""

    def __len__(self) -> int:
        return len(self._memo)

    def resolve(self, store: ModelStore, key: Member, weights: ModelWeights) -> Model:
        """Build ``weights``; an ensemble with referenced members comes back bound (verified members)."""
        model = build(weights)
        if isinstance(model, EnsembleModel) and not model.is_bound:
            model = self.bind(store, model, where(*key), ())
        return model

    def bind(self, store: ModelStore, ensemble: EnsembleModel, what: str, path: tuple[str, ...]) -> EnsembleModel:
        path = (*path, what)
        if len(path) > MAX_DEPTH:
            raise InvalidWeights(f"ensemble {path[0]}: members nest more than {MAX_DEPTH} deep ({' -> '.join(path)})")
        need = [r for r in ensemble.references if (*_key(r), r.checksum) not in self._memo]
        loaded = store.load_many([_key(r) for r in need]) if need else {}
        resolved: dict[MemberRef, Model] = {}
        for ref in ensemble.references:
            memo_key = (*_key(ref), ref.checksum)
            model = self._memo.get(memo_key)
            if model is None:
                if str(ref) in path:
                    raise InvalidWeights(f"ensemble {path[0]}: member {ref} leads back to itself "
                                         f"({' -> '.join((*path, str(ref)))})")
                model = self._member(store, ensemble, ref, loaded.get(_key(ref)), path)
                self._memo[memo_key] = model
            resolved[ref] = model
        return ensemble.bind(resolved)

    def _member(self, store: ModelStore, ensemble: EnsembleModel, ref: MemberRef, got: Any,
                path: tuple[str, ...]) -> Model:
        head = f"ensemble {path[0]}: member {ref}"
        if got is None:
            raise NotFound(f"{head}: the store returned nothing")
        if isinstance(got, NotFound | ChecksumMismatch | InvalidWeights):
            raise type(got)(f"{head}: {got}") from got
        if isinstance(got, BaseException):
            raise got  # the store is down or busy: transient, retried
        self.loads += 1
        actual = got.checksum()
        if actual != ref.checksum:
            raise ChecksumMismatch(f"{head}: weights hash to sha256 {actual[:16]}..., the manifest records "
                                   f"{ref.checksum[:16]}...")
        try:
            model = build(got)
        except InvalidWeights as exc:
            raise InvalidWeights(f"{head}: {exc}") from None
        if isinstance(model, EnsembleModel) and not model.is_bound:
            model = self.bind(store, model, str(ref), path)
        return model


def load_model(store: ModelStore, model: str, segment: str, version: int | None = None,
               loader: MemberLoader | None = None) -> Model:
    """A version (default: the active one) built and ready to score offline, members bound and verified."""
    if version is None:
        from scorer.store.base import active_version

        version = active_version(store, model, segment)
    weights = store.load(model, segment, version)
    return (loader if loader is not None else MemberLoader()).resolve(store, (model, segment, version), weights)


# ------------------------------------------------------------------------------------------ pruning


def live_references(store: ModelStore, model: str) -> dict[tuple[str, int], str]:
    """Versions of ``model`` that live (active, canary or shadow) ensembles reference, directly or through
    a referenced ensemble: (segment, version) -> the live ensemble that needs it (for prune to keep)."""
    out: dict[tuple[str, int], str] = {}
    for owner in store.models():
        for segment, pointer in store.active(owner).items():
            for version in {pointer.version, pointer.canary_version, pointer.shadow_version} - {None}:
                info = store.version_info(owner, segment, version)  # type: ignore[arg-type]
                if info is not None and info.arch == ARCH:
                    _collect(store, references(info.metadata), model, where(owner, segment, version), out, 0)
    return out


def _collect(store: ModelStore, refs: list[MemberRef], model: str, live: str,
             out: dict[tuple[str, int], str], depth: int) -> None:
    for ref in refs:
        if ref.model == model:
            out.setdefault((ref.segment, ref.version), live)
        if depth < MAX_DEPTH:
            info = store.version_info(*_key(ref))
            if info is not None and info.arch == ARCH:
                _collect(store, references(info.metadata), model, live, out, depth + 1)


def members_of(store: ModelStore, info: VersionInfo | None) -> list[str]:
    """An ensemble version's members, one line each, for ``scorer show`` ([] for other versions)."""
    if info is None or info.arch != ARCH:
        return []
    return describe(store.load(info.model, info.segment, info.version))


def describe(weights: ModelWeights) -> list[str]:
    """One line per member of ensemble weights (with its weight), for ``scorer show``."""
    meta = weights.metadata
    w = weights.arrays.get("weights")
    lines = []
    for i, spec in enumerate(meta.get("members") or []):
        if spec.get("kind") == "ref":
            text = f"{where(spec['model'], spec['segment'], spec['version'])} (sha256 {str(spec['checksum'])[:12]})"
        else:
            est = (spec.get("metadata") or {}).get("estimator")
            text = f"embedded {spec.get('arch')}" + (f" ({est})" if est else "")
        lines.append(f"{i}: {text}" + (f", weight {float(w[i]):.4g}" if w is not None and i < len(w) else ""))
    stack = meta.get("stack")
    if isinstance(stack, dict):
        lines.append(f"meta-model: {stack.get('arch')}{' with passthrough' if stack.get('passthrough') else ''}")
    return lines

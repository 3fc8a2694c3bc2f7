"""Architecture ``ensemble``: one stored version that combines several member models.

``metadata["members"]`` lists the members in order, each either

- ``{"kind": "embedded", "arch": str, "metadata": {...}}``: a full model of a registered arch whose arrays
  are this ensemble's arrays under ``m{i}/`` (exported scikit-learn Voting/Stacking estimators), or
- ``{"kind": "ref", "model": str, "segment": str, "version": int, "checksum": sha256}``: an immutable
  published version, loaded from the store and verified against the checksum before it may serve.

Embedded members share the ensemble's feature names and class labels; referenced ones must have the
same (checked when they are bound). ``metadata["combine"]`` says how member outputs become one:

- ``mean``: weighted mean of probabilities (classifiers) or values (regressors), array ``weights``;
- ``soft-vote``: the same weighted mean of probabilities (classifiers only, VotingClassifier "soft");
- ``vote``: weighted hard vote; the output is each class's share of the weight (argmax = the winner,
  ties to the first class like VotingClassifier "hard");
- ``stack``: a linear/logistic meta-model (arrays ``meta/*``, ``metadata["stack"]``) over the members'
  outputs as StackingClassifier/Regressor builds them with stack_method ``predict_proba``/``predict``:
  binary probabilities without their first column, all k columns otherwise, one column per regressor,
  then the (preprocessed) inputs when ``passthrough``.

A referenced ensemble built from its weights alone validates but cannot score until ``bind`` gives it
its members (the loader does that, see :mod:`scorer.ensemble`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scorer.errors import InvalidWeights
from scorer.models.base import Model
from scorer.models.registry import build, register
from scorer.models.weights import ModelWeights

COMBINES = ("mean", "soft-vote", "vote", "stack")
META_ARCHS = ("linear", "logistic")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A referenced member: an immutable published version and the checksum it must have."""

    model: str
    segment: str
    version: int
    checksum: str

    def __str__(self) -> str:
        return f"{self.model}/{self.segment} version {self.version}"


def stack_columns(n_members: int, classes: tuple | None) -> list[int]:
    """How many meta-model inputs each member contributes (StackingClassifier's column dropping)."""
    if classes is None:
        return [1] * n_members
    k = len(classes)
    return [1 if k == 2 else k] * n_members


def stack_feature_names(n_members: int, classes: tuple | None, passthrough: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The meta-model's feature names: member outputs (``m0``, ``m0.p1``...) then the passed-through inputs."""
    names: list[str] = []
    for i, width in enumerate(stack_columns(n_members, classes)):
        if classes is None:
            names.append(f"m{i}")
        else:
            names.extend(f"m{i}.p{c}" for c in range(len(classes) - width, len(classes)))
    return (*names, *passthrough)


@register
class EnsembleModel(Model):
    """Members combined by a weighted mean, a vote, or a stored meta-model (see the module docstring)."""

    arch: ClassVar[str] = "ensemble"
    checks_own_input: ClassVar[bool] = True  # every member checks (or imputes) its own inputs

    def _validate(self) -> None:
        self._combine = self._meta("combine", str, choices=COMBINES)
        specs = self._meta("members", list)
        if not specs:
            raise InvalidWeights(f"{self._what()}: metadata 'members' is empty; an ensemble needs members")
        if self.classes is None and self._combine in ("soft-vote", "vote"):
            raise InvalidWeights(f"{self._what()}: combine {self._combine!r} needs classifiers; these members "
                                 "are regressors (use 'mean' or 'stack')")
        self._member_names = tuple(self.feature_names) if self.n_inputs == self.n_features else \
            tuple(f"input {i}" for i in range(self.n_inputs))
        self._members: list[Model | None] = []
        refs: list[MemberRef] = []
        for i, spec in enumerate(specs):
            kind = spec.get("kind") if isinstance(spec, dict) else None
            if kind == "embedded":
                self._members.append(self._embedded(i, spec))
            elif kind == "ref":
                refs.append(self._reference(i, spec))
                self._members.append(None)
            else:
                raise InvalidWeights(f"{self._what()}: member {i} must be an object with kind 'embedded' or "
                                     f"'ref'; got {spec!r}"[:300])
        if len(set(refs)) != len(refs):
            raise InvalidWeights(f"{self._what()}: a member version is referenced twice")
        if refs and self._steps:
            raise InvalidWeights(f"{self._what()}: an ensemble of referenced members has no preprocessing of its "
                                 "own (each member carries its own)")
        self.references: tuple[MemberRef, ...] = tuple(refs)
        n = len(self._members)
        self._weights = None
        self._meta_model: Model | None = None
        if self._combine == "stack":
            self._validate_stack(n)
        else:
            weights = self._array("weights", shape=(n,))
            if (weights < 0).any() or not weights.sum() > 0:
                raise InvalidWeights(f"{self._what()}: weights must be >= 0 with a positive sum; got "
                                     f"{weights.tolist()}")
            self._weights = weights
            self._wn = weights / weights.sum()
        self._after_members()

    # -- members --------------------------------------------------------------------------------------
    def _embedded(self, i: int, spec: dict[str, Any]) -> Model:
        arch, metadata = spec.get("arch"), spec.get("metadata", {})
        if arch == self.arch:
            raise InvalidWeights(f"{self._what()}: member {i} is itself an ensemble; embedded ensembles do not nest")
        if not isinstance(arch, str) or not isinstance(metadata, dict) or set(spec) - {"kind", "arch", "metadata"}:
            raise InvalidWeights(f"{self._what()}: embedded member {i} needs 'arch' (str) and 'metadata' (object)")
        prefix = f"m{i}/"
        arrays = {name[len(prefix):]: a for name, a in self.weights.arrays.items() if name.startswith(prefix)}
        self._used.update(prefix + name for name in arrays)
        return self._sub(f"member {i}", ModelWeights(arch, self._member_names, arrays, self.classes, metadata))

    def _sub(self, what: str, weights: ModelWeights) -> Model:
        try:
            return build(weights)
        except InvalidWeights as exc:
            raise InvalidWeights(f"{self._what()}: {what}: {exc}") from None

    def _reference(self, i: int, spec: dict[str, Any]) -> MemberRef:
        model, segment, version, checksum = (spec.get(k) for k in ("model", "segment", "version", "checksum"))
        if (not isinstance(model, str) or not model or not isinstance(segment, str) or not segment
                or type(version) is not int or version < 1 or not isinstance(checksum, str)
                or not _SHA256.match(checksum) or set(spec) - {"kind", "model", "segment", "version", "checksum"}):
            raise InvalidWeights(f"{self._what()}: referenced member {i} needs model, segment (str), version "
                                 f"(int >= 1) and checksum (64 hex digits); got {spec!r}"[:300])
        return MemberRef(model, segment, version, checksum)

    def _validate_stack(self, n: int) -> None:
        spec = self._meta("stack", dict)
        arch, metadata, passthrough = spec.get("arch"), spec.get("metadata", {}), spec.get("passthrough", False)
        if arch not in META_ARCHS or not isinstance(metadata, dict) or not isinstance(passthrough, bool):
            raise InvalidWeights(f"{self._what()}: metadata 'stack' needs arch in {list(META_ARCHS)}, metadata "
                                 f"(object) and passthrough (bool); got {spec!r}"[:300])
        self._passthrough = passthrough
        self._stack_widths = stack_columns(n, self.classes)
        names = stack_feature_names(n, self.classes, self._member_names if passthrough else ())
        arrays = {name[5:]: a for name, a in self.weights.arrays.items() if name.startswith("meta/")}
        self._used.update("meta/" + name for name in arrays)
        self._meta_model = self._sub("meta-model", ModelWeights(arch, names, arrays, self.classes, metadata))

    def _after_members(self) -> None:
        """Derived state once every member is known (built, or bound for references)."""
        members = self._members
        self.is_bound = all(m is not None for m in members)
        if not self.is_bound:
            self._missing_ok = False
            return
        self._missing_ok = all(m.accepts_missing for m in members)  # type: ignore[union-attr]
        if self._meta_model is not None and self._passthrough:
            self._missing_ok = self._missing_ok and self._meta_model.accepts_missing
        self._n_out = len(self.classes) if self.classes is not None else 0

    @property
    def accepts_missing(self) -> bool:
        return self._imputes or getattr(self, "_missing_ok", False)

    @property
    def members(self) -> tuple[Model | None, ...]:
        """The member models in order (None for a reference not bound yet)."""
        return tuple(self._members)

    def bind(self, resolved: Mapping[MemberRef, Model]) -> EnsembleModel:
        """A copy of this ensemble whose referenced members are ``resolved[ref]``, each checked to fit."""
        bound = copy.copy(self)
        bound._members = list(self._members)
        refs = iter(self.references)
        for i, member in enumerate(self._members):
            if member is not None:
                continue
            ref = next(refs)
            model = resolved.get(ref)
            if model is None:
                raise InvalidWeights(f"{self._what()}: member {i} ({ref}) was not loaded")
            problem = member_mismatch(model, self.feature_names, self.classes)
            if problem:
                raise InvalidWeights(f"{self._what()}: member {i} ({ref}) {problem}")
            bound._members[i] = model
        bound._after_members()
        return bound

    # -- scoring --------------------------------------------------------------------------------------
    def _predict(self, X: np.ndarray) -> np.ndarray:
        if not self.is_bound:
            missing = ", ".join(map(str, self.references))
            raise ValueError(f"{self._what()}: referenced members are not loaded ({missing}); "
                             "load the ensemble through the store (scorer.ensemble.load_model)")
        outs = [m.predict(X) for m in self._members]  # type: ignore[union-attr]
        if self._meta_model is not None:
            return self._meta_model.predict(self._stack_inputs(outs, X))
        return self._combine_outputs(outs, self._wn)

    def _stack_inputs(self, outs: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        cols = [o.reshape(-1, 1) if o.ndim == 1 else (o[:, 1:] if o.shape[1] == 2 else o) for o in outs]
        if self._passthrough:
            cols.append(X)
        return np.ascontiguousarray(np.hstack(cols))

    def _combine_outputs(self, outs: list[np.ndarray], wn: np.ndarray) -> np.ndarray:
        """Weighted mean (``wn`` normalised, (m,) or per row (n, m)) or weighted vote shares."""
        per_row = wn.ndim == 2
        if self._combine == "vote":
            n, k = outs[0].shape[0], self._n_out
            shares = np.zeros((n, k))
            rows = np.arange(n)
            for j, out in enumerate(outs):
                np.add.at(shares, (rows, out.argmax(axis=1)), wn[:, j] if per_row else wn[j])
            return shares
        total = np.zeros_like(outs[0])
        for j, out in enumerate(outs):
            w = wn[:, j] if per_row else wn[j]
            total += out * (w[:, None] if per_row and out.ndim == 2 else w)
        return total

    def fuse_key(self) -> tuple | None:
        """Ensembles whose members all fuse, position by position, fuse too (weights may differ per row)."""
        if not self.is_bound or self._meta_model is not None or self._steps:
            return None
        keys = []
        for m in self._members:
            key = m.fuse_key()  # type: ignore[union-attr]
            if key is None:
                return None
            keys.append((type(m), *key))
        return ("ensemble", self._combine, self._n_out, tuple(keys))

    @classmethod
    def predict_fused(cls, models: list[Model], X: np.ndarray, owner: np.ndarray) -> np.ndarray:
        first: EnsembleModel = models[0]  # type: ignore[assignment]
        outs = []
        for j, member in enumerate(first._members):
            column = [m._members[j] for m in models]  # type: ignore[attr-defined]
            outs.append(type(member).predict_fused(column, X, owner))
        wn = np.stack([m._wn for m in models])[owner]  # type: ignore[attr-defined]
        return first._combine_outputs(outs, wn)


def member_mismatch(model: Model, feature_names: tuple[str, ...], classes: tuple | None) -> str | None:
    """Why ``model`` cannot be a member of an ensemble over these features and classes (None: it can)."""
    if tuple(model.feature_names) != tuple(feature_names):
        return (f"has features {list(model.feature_names)[:8]}; the ensemble's are {list(feature_names)[:8]} "
                "(members need the same feature list, in the same order)")
    if (model.classes is None) != (classes is None):
        task = "a regressor" if model.classes is None else "a classifier"
        return f"is {task}; the other members are not (members need the same task)"
    if classes is not None and tuple(model.classes) != tuple(classes):
        return f"has classes {list(model.classes)}; the ensemble's are {list(classes)}"
    return None

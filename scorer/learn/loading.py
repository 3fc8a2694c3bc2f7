"""Which version a segment learns from when the learner first meets it (or resumes it)."""

from __future__ import annotations

from scorer.errors import ScorerError
from scorer.learn.config import RESUME_REASON, LearnConfig
from scorer.learn.learner import Learner, Segment
from scorer.learn.state import learnable
from scorer.store.base import ModelStore


def load_segment(store: ModelStore, learner: Learner, config: LearnConfig, model: str, segment: str,
                 offsets: dict[str, int] | None) -> Segment:
    """Pick the version to learn from: the newest checkpoint of ours unless someone changed the pointer
    after it (paused, or resumed: then the live version), else the live version (a warm start)."""
    row = store.active(model, segment).get(segment)
    if row is None or row.version is None:
        raise ScorerError(f"{model}/{segment} has no live version")
    mine = next((v for v in store.versions(model, segment)
                 if v.author == config.actor and "learner" in (v.metadata or {})), None)
    latest = store.activations(model, segment, limit=1)
    human = latest[0] if latest and latest[0].actor != config.actor else None
    paused = resumed = False
    base_version = row.version
    if mine is not None:
        later = human is not None and (mine.created_at is None or human.at > mine.created_at)
        resumed = later and (human.reason or "").startswith(RESUME_REASON)
        paused = not resumed and (later or bool(mine.metadata["learner"].get("paused")))
        base_version = row.version if resumed else mine.version
    weights = store.load(model, segment, base_version)
    learned = learnable(weights, config.params)
    if offsets is None and mine is not None and base_version != mine.version:
        offsets = dict(learnable(store.load(model, segment, mine.version)).offsets)
    seg = learner.add(model, segment, weights, base_version, learned, offsets, row.version)
    seg.paused = paused
    return seg

"""Retry delays: exponential, capped, with jitter, so that workers failing together do not retry in step."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float) -> float:
    """Delay before retry ``attempt`` (1, 2, ...): ``base * 2**(attempt-1)`` capped at ``cap``, then scaled by a
    random factor in [0.5, 1] ("equal jitter": never less than half the step, never in lockstep)."""
    step = min(cap, base * 2 ** min(max(0, attempt - 1), 30))
    return step * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not secrets

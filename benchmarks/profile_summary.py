"""Per-function CPU shares from py-spy's collapsed stacks (``py-spy record --format raw``).

Prints the top functions by inclusive share (a function anywhere on the stack) and by self share (the leaf),
as percentages of all samples, so the findings of a flame graph can be written down as numbers.

    .venv/bin/python benchmarks/profile_summary.py reports/profiles/worker-logistic.collapsed.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \((?P<file>[^)]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``fn (path/to/module.py:123)`` -> ``fn (module.py)``: one name per function, not per line."""
    match = _LINE.search(frame)
    if match is None:
        return frame
    return f"{frame[:match.start()]} ({Path(match['file']).name})"


def summarise(path: Path) -> tuple[int, Counter, Counter]:
    total = 0
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        total += n
        for name in set(frames):
            inclusive[name] += n
        leaf[frames[-1]] += n
    return total, inclusive, leaf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collapsed", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, inclusive, leaf = summarise(args.collapsed)
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", leaf)):
        print(f"\n{title} share")
        for name, n in counter.most_common(args.top):
            print(f"{100 * n / max(1, total):6.1f}%  {name}")


if __name__ == "__main__":
    main()

"""``scorer train --out DIR``: one ``.npz`` and one JSON sidecar per segment, plus ``summary.json``.

``summary.json``::

    {"model", "task", "arch", "target", "segment_col", "features": [...], "config": {...}, "created_at",
     "n_dropped_rows", "segments": {"<segment>": {"file": "<stem>.npz", "sidecar": "<stem>.json",
                                                   "checksum", "n_rows", "metrics": {...}, "stats": {...}}},
     "skipped": {"<segment>": {"n_rows", "reason"}}}

File stems are the segment name when it is made of ``A-Za-z0-9._-`` only (and is not ``summary``, a dot
name, or equal to another stem ignoring case); otherwise unsafe characters become ``_`` and 8 hex digits
of the name's sha256 are appended, so two segments never share a file on any file system.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trainers.segment import SegmentResult, TrainConfig, TrainReport

SUMMARY_NAME = "summary.json"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 100


def file_stems(segments: list[str]) -> dict[str, str]:
    """A distinct, file-system-safe stem for every segment name (see the module docstring)."""
    stems: dict[str, str] = {}
    taken: set[str] = set()
    plain = [s for s in segments if _is_plain(s)]
    # Plain names keep themselves unless two of them differ only by case.
    lowered = [s.lower() for s in plain]
    for segment in plain:
        if lowered.count(segment.lower()) == 1:
            stems[segment] = segment
            taken.add(segment.lower())
    for segment in segments:
        if segment in stems:
            continue
        digest = hashlib.sha256(segment.encode()).hexdigest()
        base = _SAFE.sub("_", segment)[:_MAX_STEM].lstrip(".") or "segment"
        stem = f"{base}-{digest[:8]}"
        if stem.lower() in taken:
            stem = f"{base}-{digest[:16]}"
        stems[segment] = stem
        taken.add(stem.lower())
    return stems


def _is_plain(segment: str) -> bool:
    return (bool(segment) and not _SAFE.search(segment) and not segment.startswith(".")
            and len(segment) <= _MAX_STEM and segment.lower() != SUMMARY_NAME.removesuffix(".json"))


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)


def _segment_entry(result: SegmentResult, stem: str) -> dict[str, Any]:
    return {"file": f"{stem}.npz", "sidecar": f"{stem}.json", "checksum": result.weights.checksum(),
            "n_rows": result.n_rows, "metrics": result.metrics, "stats": result.stats}


def write_outputs(report: TrainReport, out_dir: str | Path, *, model: str, target: str, segment_col: str,
                  config: TrainConfig, author: str | None = None) -> Path:
    """Write every segment's weights and sidecar, then ``summary.json`` (last, so it only names files that exist)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stems = file_stems([result.segment for result in report.results])
    segments: dict[str, Any] = {}
    for result in report.results:
        stem = stems[result.segment]
        result.weights.save(out / f"{stem}.npz")
        entry = _segment_entry(result, stem)
        sidecar = {"model": model, "segment": result.segment, "arch": result.weights.arch,
                   "feature_names": list(result.weights.feature_names),
                   "classes": list(result.weights.classes) if result.weights.classes is not None else None,
                   **entry}
        _write_atomic(out / f"{stem}.json", _json(sidecar))
        segments[result.segment] = entry
    config_dict = {f.name: getattr(config, f.name) for f in fields(config)}
    config_dict["params"] = dict(config.params)
    summary = {
        "model": model, "task": report.task, "arch": report.arch, "target": target, "segment_col": segment_col,
        "features": list(report.feature_names), "config": config_dict, "author": author,
        "created_at": datetime.now(UTC).isoformat(), "n_dropped_rows": report.n_dropped,
        "segments": segments,
        "skipped": {s.segment: {"n_rows": s.n_rows, "reason": s.reason} for s in report.skipped},
    }
    path = out / SUMMARY_NAME
    _write_atomic(path, _json(summary))
    return path

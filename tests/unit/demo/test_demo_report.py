"""The demo report's figures on small hand-made runs: lost, duplicates, accuracy, AUC, percentiles, swap delays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from scorer.cli import main
from scorer.demo import report
from scorer.demo.report import Labels, Records, Swap, compute_summary, roc_auc, to_epoch_seconds
from scorer.errors import ConfigError

T0 = 1_700_000_000.0


def _labels() -> Labels:
    ids = np.array([f"e-{i}" for i in range(10)])
    segments = np.array(["A", "B"] * 5)
    y = np.array([1, 0, 1, 0, 0, 1, 1, 0, 0, 1])
    return Labels(ids=ids, segments=segments, y=y)


def _prediction(i: int, segment: str, version: int, p: float, scored: float) -> dict:
    return {"id": f"e-{i}", "model": "rides", "segment": segment, "version": version, "canary": False,
            "prediction": p, "label": int(p >= 0.5), "scored_at": scored}


def _run() -> tuple[Records, list[Swap]]:
    """e-0..e-9 sent 1 s apart; e-7 lost, e-8 dead-lettered, e-2 scored twice, one unknown id.

    Segment A swaps to v2 at T0+4.5: e-6 (sent T0+6) is its first v2 prediction, scored 20 ms later.
    """
    labels = _labels()
    records = Records()
    for i in range(10):
        records.add("event", {"id": f"e-{i}"}, (T0 + i) * 1000.0)
    latencies = [0.010, 0.012, 0.011, 0.013, 0.015, 0.014, 0.020, None, None, 0.016]
    probabilities = [0.9, 0.2, 0.4, 0.3, 0.1, 0.8, 0.7, None, None, 0.3]
    for i in range(10):
        if latencies[i] is None:
            continue
        segment = str(labels.segments[i])
        version = 2 if segment == "A" and i >= 6 else 1
        records.add("prediction", _prediction(i, segment, version, probabilities[i], T0 + i + latencies[i]), None)
    records.add("prediction", _prediction(2, "A", 1, 0.4, T0 + 2.5), None)          # duplicate
    records.add("prediction", _prediction(99, "A", 1, 0.4, T0 + 3.0), None)         # not in the stream
    records.add("dead_letter", {"error": "missing feature 'rating': model cannot impute", "raw": '{"id": "e-8"}',
                                "topic": "events", "partition": 0, "offset": 8}, None)
    swaps = [Swap(segment="A", version=2, method="raw CQL UPDATE", at=T0 + 4.5)]
    return records, swaps


def test_counts_lost_duplicates_dead_letters_and_unknown_ids() -> None:
    records, swaps = _run()
    summary, _ = compute_summary(_labels(), records, swaps)
    assert summary["stream_events"] == 10 and summary["events_sent"] == 10
    assert summary["predictions"] == 10
    assert summary["events_predicted"] == 8
    assert summary["duplicates"] == 1
    assert summary["dead_letters"] == 1
    assert summary["dead_letters_by_reason"] == {"missing feature 'rating'": 1}
    assert summary["lost"] == 1 and summary["lost_examples"] == ["e-7"]
    assert summary["lost_never_sent"] == 0
    assert summary["unexpected_ids"] == 1
    assert summary["events_per_version"] == {"A": {"1": 3, "2": 1}, "B": {"1": 4}}
    assert not summary["ok"]
    failed = {check["name"] for check in summary["checks"] if not check["ok"]}
    assert failed == {"no event lost", "no dead letter", "every output readable"}


def test_latency_percentiles_use_the_first_prediction_per_event() -> None:
    records, swaps = _run()
    summary, joined = compute_summary(_labels(), records, swaps)
    expected = np.array([10, 12, 11, 13, 15, 14, 20, 16], dtype=float)
    assert joined.latency_ms == pytest.approx(expected, abs=1e-3)
    assert summary["latency_ms"]["p50"] == pytest.approx(np.percentile(expected, 50), abs=0.01)
    assert summary["latency_ms"]["p99"] == pytest.approx(np.percentile(expected, 99), abs=0.01)
    assert summary["latency_ms"]["max"] == pytest.approx(20.0, abs=0.01)


def test_accuracy_and_auc_per_segment_and_version() -> None:
    records, swaps = _run()
    summary, _ = compute_summary(_labels(), records, swaps)
    # A v1: e-0 (0.9 vs 1 ok), e-2 (0.4 vs 1 wrong), e-4 (0.1 vs 0 ok)
    # positives {0.9, 0.4} both above the negative {0.1}: AUC 1 although accuracy is 2/3
    assert summary["metrics"]["A"]["1"] == {"n": 3, "accuracy": pytest.approx(2 / 3, abs=1e-4), "auc": 1.0}
    # B v1: e-1 (0.2/0 ok), e-3 (0.3/0 ok), e-5 (0.8/1 ok), e-9 (0.3/1 wrong); AUC: positives {0.8,0.3}, negatives
    # {0.2,0.3}: pairs 0.8>0.2, 0.8>0.3, 0.3>0.2, 0.3=0.3 (half) -> 3.5/4
    assert summary["metrics"]["B"]["1"] == {"n": 4, "accuracy": 0.75, "auc": 0.875}
    assert summary["metrics"]["A"]["2"]["auc"] is None  # one class only


def test_swap_delay_and_old_version_after_the_swap() -> None:
    records, swaps = _run()
    summary, _ = compute_summary(_labels(), records, swaps)
    (swap,) = summary["swaps"]
    assert swap["observed"] and swap["from_version"] == 1 and swap["to_version"] == 2
    assert swap["delay_ms"] == pytest.approx(1520.0, abs=0.5)  # e-6 scored at T0+6.020, row written at T0+4.5
    assert swap["events_sent_after_swap_on_old_version"] == 0
    late = Records()
    for kind, value, ts in [("event", {"id": "e-0"}, T0 * 1000), ("event", {"id": "e-2"}, (T0 + 5) * 1000)]:
        late.add(kind, value, ts)
    late.add("prediction", _prediction(0, "A", 1, 0.9, T0 + 0.01), None)
    late.add("prediction", _prediction(2, "A", 1, 0.9, T0 + 5.01), None)  # sent after the swap, still old
    summary, _ = compute_summary(_labels(), late, swaps)
    (swap,) = summary["swaps"]
    assert not swap["observed"] and swap["delay_ms"] is None
    assert swap["events_sent_after_swap_on_old_version"] == 1
    assert swap["old_version_last_scored_ms"] == pytest.approx(510.0, abs=0.5)
    assert any(not c["ok"] and c["name"].startswith("swap A -> v2") for c in summary["checks"])


def test_drift_phases_before_after_and_on_the_new_version() -> None:
    labels = Labels(ids=np.array([f"e-{i}" for i in range(12)]), segments=np.array(["S"] * 12),
                    y=np.array([1, 0] * 6))
    records = Records()
    for i in range(12):
        right = 0.9 if labels.y[i] else 0.1
        wrong = 1.0 - right
        version = 3 if i >= 8 else 2
        p = right if i < 4 or i >= 8 else wrong  # correct before the drift (at 4), wrong until the swap, then right
        records.add("event", {"id": f"e-{i}"}, (T0 + i) * 1000)
        records.add("prediction", _prediction(i, "S", version, p, T0 + i + 0.01), None)
    meta = {"drift": {"city": "S", "first_index": 4, "first_id": "e-4"}}
    summary, _ = compute_summary(labels, records, [Swap("S", 3, "scorer activate", T0 + 7.5)], meta)
    drift = summary["drift"]
    assert drift["before_drift"]["accuracy"] == 1.0 and drift["before_drift"]["n"] == 4
    assert drift["after_drift_old_version"] == {"n": 4, "accuracy": 0.0, "auc": 0.0}
    assert drift["after_swap_new_version"]["accuracy"] == 1.0
    assert drift["recovered"] and summary["ok"]


def test_roc_auc_matches_scikit_learn_with_ties(rng: np.random.Generator) -> None:
    from sklearn.metrics import roc_auc_score

    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # rounding makes many ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert roc_auc(np.ones(5), np.arange(5.0)) is None


@pytest.mark.parametrize(("value", "expected"), [
    (1_700_000_000.5, 1_700_000_000.5),
    (1_700_000_000_500, 1_700_000_000.5),
    (1_700_000_000_500_000, 1_700_000_000.5),
    (1_700_000_000_500_000_000, 1_700_000_000.5),
    ("1700000000.5", 1_700_000_000.5),
    ("2023-11-14T22:13:20.500Z", 1_700_000_000.5),
    ("2023-11-14T22:13:20.500+00:00", 1_700_000_000.5),
    ("2023-11-14T22:13:20", None),  # naive: refuse to guess the zone
    ("yesterday", None),
    (None, None),
])
def test_times_in_every_form_the_worker_may_write(value: object, expected: float | None) -> None:
    assert to_epoch_seconds(value) == (pytest.approx(expected) if expected is not None else None)


def test_dump_round_trip_and_bare_lines(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    rows = [("event", {"id": "e-0"}, T0 * 1000), ("prediction", _prediction(0, "A", 1, 0.9, T0), None)]
    count = report.write_dump(dump, rows)
    assert count == 2
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(_prediction(1, "B", 1, 0.2, T0)) + "\n"
                    + json.dumps({"error": "not JSON", "raw": "xx", "topic": "t", "partition": 0, "offset": 1}) + "\n")
    records = report.read_jsonl([dump, bare])
    assert records.sent == {"e-0": T0}
    assert [p["id"] for p in records.predictions] == ["e-0", "e-1"]
    assert len(records.dead_letters) == 1
    (tmp_path / "junk.jsonl").write_text('{"what": 1}\n')
    with pytest.raises(ConfigError, match="cannot tell what this record is"):
        report.read_jsonl([tmp_path / "junk.jsonl"])


def _write_stream(directory: Path, labels: Labels) -> Path:
    lines = ["id,ts,city,cancelled"] + [f"{i},2024-06-01T00:00:00Z,{s},{y}"
                                        for i, s, y in zip(labels.ids, labels.segments, labels.y, strict=True)]
    path = directory / "stream.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_from_a_dump_writes_json_and_png_and_fails_on_a_lost_event(tmp_path: Path) -> None:
    records, swaps = _run()
    stream = _write_stream(tmp_path, _labels())
    dump = tmp_path / "dump.jsonl"
    rows = [("event", {"id": i}, ts * 1000) for i, ts in records.sent.items()]
    rows += [("prediction", p, None) for p in records.predictions]
    rows += [("dead_letter", d, None) for d in records.dead_letters]
    report.write_dump(dump, rows)
    swaps_file = tmp_path / "swaps.jsonl"
    swaps_file.write_text(json.dumps({"segment": "A", "version": 2, "method": "raw CQL UPDATE",
                                      "written_at": T0 + 4.5}) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["demo-report", "--stream", str(stream), "--swaps", str(swaps_file),
                                       "--from-jsonl", str(dump), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: demo checks failed: no event lost (1 lost")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == 1 and summary["swaps"][0]["observed"]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    clean = CliRunner().invoke(main, ["demo-report", "--stream", str(stream), "--from-jsonl", str(dump),
                                      "--out", str(out), "--no-png", "--no-check"])
    assert clean.exit_code == 0, clean.output
    assert "lost (no prediction, no dead letter)" in clean.output

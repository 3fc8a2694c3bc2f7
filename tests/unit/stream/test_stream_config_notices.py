"""Worker configuration, model-changes notices and the bulk latency histogram (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from scorer.backoff import backoff
from scorer.config import load_settings
from scorer.kafka.notices import Notice, decode_notice, encode_notice, try_publish_notice
from scorer.stream.metrics import BulkHistogram, WorkerMetrics
from scorer.stream.sink import key_partition
from scorer.stream.worker import WorkerConfig


def test_worker_config_defaults_and_validation() -> None:
    config = WorkerConfig()
    assert (config.input_topic, config.output_topic, config.dlq_topic) == ("events", "predictions", "events-dlq")
    assert (config.poll_interval, config.batch_size, config.max_models, config.web_port) == (0.25, 1000, 10_000, 6066)
    assert config.fallback_segment == "__default__"
    assert WorkerConfig(models="a, b,,c").models == ("a", "b", "c")
    limits = WorkerConfig(max_message_bytes=4096, max_features=7).limits()
    assert (limits.max_message_bytes, limits.max_features) == (4096, 7)
    for bad in ({"batch_size": 0}, {"poll_interval": 0}, {"batch_window_ms": 0}, {"max_models": 0},
                {"web_port": 70000}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            WorkerConfig(**bad)
    settings = load_settings(app_id="fleet")
    assert WorkerConfig().resolved_datadir(settings).name == "fleet"
    for moved in ({"app_id": "mine"}, {"changes_topic": "c"}):  # settings now, one place for each
        with pytest.raises(ValidationError):
            WorkerConfig(**moved)


def test_backoff_grows_is_capped_and_jittered() -> None:
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for n, step in zip((1, 2, 3, 4, 5, 9), steps, strict=True):
        delays = [backoff(n, 0.1, 1.0) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 100  # jittered: workers failing together do not retry in step


def test_notice_round_trip_and_bad_notices_are_ignored() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = encode_notice("delay", "ORD", "activate", 3, at)
    assert orjson.loads(raw) == {"model": "delay", "segment": "ORD", "action": "activate", "version": 3,
                                 "at": "2026-01-02T03:04:05+00:00"}
    assert decode_notice(raw) == Notice(model="delay", segment="ORD", action="activate", version=3,
                                        at="2026-01-02T03:04:05+00:00")
    release = decode_notice(encode_notice("delay", None, "release", None))
    assert release is not None and release.segment is None and release.version is None
    for bad in (None, b"", b"not json", b"[1]", b'{"segment": "x"}'):
        assert decode_notice(bad) is None


def test_a_notice_that_cannot_be_sent_is_a_warning_not_an_error() -> None:
    settings = load_settings(kafka="kafka://127.0.0.1:1", changes_topic="changes-x")
    warning = try_publish_notice(settings, "delay", "ORD", "activate", 3, timeout=3.0)
    assert warning is not None
    assert warning.startswith("the change is live, but its 'changes-x' notice was not sent (")
    assert warning.endswith("workers pick it up at their next poll")


def test_key_partition_matches_the_java_default() -> None:
    # Values of the Java client's murmur2 partitioner (org.apache.kafka.common.utils.Utils.murmur2).
    from aiokafka.partitioner import murmur2

    for key in (b"e-1", b"e-2", b"hello", b""):
        assert key_partition(key, 8) == (murmur2(key) & 0x7FFFFFFF) % 8
    assert {key_partition(f"e-{i}".encode(), 4) for i in range(200)} == {0, 1, 2, 3}


def test_bulk_histogram_matches_one_by_one_counting() -> None:
    metrics = WorkerMetrics()
    values = np.array([0.0005, 0.001, 0.004, 0.02, 0.02, 7.0, 100.0])
    metrics.e2e.observe_many(values)
    metrics.e2e.observe_many(np.array([]))
    counts, total = metrics.e2e.snapshot()
    assert int(counts.sum()) == 7 and total == pytest.approx(values.sum())
    text = metrics.render().decode()
    assert 'scorer_e2e_latency_seconds_bucket{le="0.001"} 2.0' in text  # le is inclusive, like Prometheus
    assert 'scorer_e2e_latency_seconds_bucket{le="0.02"} 5.0' in text
    assert 'scorer_e2e_latency_seconds_bucket{le="+Inf"} 7.0' in text
    assert "scorer_e2e_latency_seconds_count 7.0" in text
    assert metrics.e2e.quantile(0.5) == 0.02
    assert metrics.e2e.quantile(1.0) == float("inf")
    other = WorkerMetrics()  # a private registry each: nothing shared between apps or tests
    assert "scorer_e2e_latency_seconds_count 0.0" in other.render().decode()


def test_histogram_helper_is_a_collector() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    hist = BulkHistogram("x_seconds", "doc", (1.0, 2.0), registry)
    hist.observe_many(np.array([0.5, 1.5, 3.0]))
    assert registry.get_sample_value("x_seconds_bucket", {"le": "1.0"}) == 1
    assert registry.get_sample_value("x_seconds_count") == 3


def test_worker_apps_run_faust_stock_transport() -> None:
    from faust.transport.drivers.aiokafka import Transport

    from scorer.stream.app import new_app

    app = new_app("t-stock", WorkerConfig(), broker="kafka://127.0.0.1:9092")
    assert type(app.transport) is Transport

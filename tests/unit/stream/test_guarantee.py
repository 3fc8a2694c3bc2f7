"""Delivery guarantee options: SCORER_GUARANTEE, --guarantee, their defaults and the transactional ids."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import InvalidProducerEpoch, KafkaTimeoutError, ProducerFenced
from click.testing import CliRunner
from pydantic import ValidationError

from scorer.cli import main
from scorer.config import DEFAULT_GUARANTEE, load_settings
from scorer.errors import ConfigError
from scorer.kafka.transactions import is_fenced, transactional_id
from scorer.stream.config import ALO_COMMIT_INTERVAL, EOS_COMMIT_INTERVAL, WorkerConfig


def test_settings_read_the_guarantee_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().guarantee == DEFAULT_GUARANTEE
    monkeypatch.setenv("SCORER_GUARANTEE", "exactly-once")
    assert load_settings().guarantee == "exactly-once"
    monkeypatch.setenv("SCORER_GUARANTEE", "twice")
    with pytest.raises(ConfigError, match="guarantee"):
        load_settings()


def test_commit_interval_defaults_follow_the_guarantee() -> None:
    assert WorkerConfig(guarantee="at-least-once").commit_interval == ALO_COMMIT_INTERVAL
    assert WorkerConfig(guarantee="exactly-once").commit_interval == EOS_COMMIT_INTERVAL
    assert WorkerConfig(guarantee="exactly-once", commit_interval=None).commit_interval == EOS_COMMIT_INTERVAL
    assert WorkerConfig(guarantee="exactly-once", commit_interval=0.5).commit_interval == 0.5
    assert WorkerConfig(guarantee="exactly-once").exactly_once
    assert not WorkerConfig(guarantee="at-least-once").exactly_once


def test_exactly_once_needs_the_direct_reader() -> None:
    with pytest.raises(ValidationError, match="direct reader"):
        WorkerConfig(guarantee="exactly-once", consumer="faust")
    assert WorkerConfig(guarantee="at-least-once", consumer="faust").consumer == "faust"


def test_cli_refuses_exactly_once_with_the_faust_reader_in_one_line() -> None:
    result = CliRunner().invoke(main, ["worker", "--guarantee", "exactly-once", "--consumer", "faust"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: invalid options: exactly-once needs the direct reader (--consumer direct)"]
    result = CliRunner().invoke(main, ["worker", "--guarantee", "twice"])
    assert result.exit_code == 1 and "twice" in result.output and result.output.startswith("error:")


def test_one_transactional_id_per_input_partition() -> None:
    ids = {transactional_id("scorer", TopicPartition("events", p)) for p in range(8)}
    assert len(ids) == 8
    assert transactional_id("scorer", TopicPartition("events", 3)) == "scorer.events.3"
    assert transactional_id("scorer", TopicPartition("events", 3)) != transactional_id(
        "other", TopicPartition("events", 3))


def test_fenced_errors_are_told_apart_from_other_failures() -> None:
    assert is_fenced(ProducerFenced())
    assert is_fenced(InvalidProducerEpoch())
    wrapped = RuntimeError("send failed")
    wrapped.__cause__ = ProducerFenced()
    assert is_fenced(wrapped)
    assert not is_fenced(KafkaTimeoutError())
    assert not is_fenced(None)

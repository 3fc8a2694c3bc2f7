"""``scorer learn-worker``: labels in, checkpointed versions out, every label learned exactly once.

One consumer reads the events topic (features, cached by id for ``join_ttl``) and the labels topic. Labels
are taken per partition in offset order: a label whose event has not been seen yet holds its partition back
for at most ``label_wait`` seconds, then goes to the dead-letter topic as an unknown id. Valid labels are
learned at once (``Learner.learn``: lockstep SGD across segments); a segment is checkpointed every
``every_labels`` labels or ``every_seconds`` seconds: a new version holding the weights, the learner state
and the label-topic position it includes. Offsets are committed as low watermarks (``offsets``), so
nothing is committed before the checkpoint (or dead letter) that makes it safe. After a crash the group
reads again from the watermark; each segment skips labels below its checkpoint's position and learns the
rest, so no label is lost and none is learned twice. A segment's labels are learned in the labels topic's
order: deterministic when they share one partition (key labels by segment, or use one partition).

Promotion: ``direct`` activates each checkpoint, ``none`` only publishes. A pointer change made by anyone
else (activate, rollback, release, ...) pauses the segment: its labels are dead-lettered as "segment
paused" until ``scorer learn resume`` (an activation of the live version with reason "learn resume"), after
which it learns on from the version then live, at its current position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from scorer.config import Settings
from scorer.errors import ScorerError
from scorer.learn.config import RESUME_REASON, LearnConfig
from scorer.learn.gate import Gate
from scorer.learn.labels import DONE, OTHER, CachedEvent, EventCache, label_value, loads_label, target_of
from scorer.learn.learner import Example, Learner, Segment, rejected_letters
from scorer.learn.loading import load_segment
from scorer.learn.offsets import Watermarks
from scorer.monitor.topics import Publisher
from scorer.store.base import ModelStore
from scorer.stream.events import Event, decode_one

log = logging.getLogger(__name__)
_MAX_QUEUED = 50_000
"""Labels queued per partition (behind one waiting for its event) before that partition stops fetching."""


class LearnWorker:
    """The service; ``await run(stop)`` until ``stop`` is set. ``ready`` is set once partitions are assigned."""

    def __init__(self, settings: Settings, config: LearnConfig, *, store: ModelStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.config = settings, config
        self.learner = Learner(config.every_labels, config.every_seconds, clock)
        self.marks = Watermarks()
        self.events = EventCache(config.join_ttl, config.join_max, self._evicted, clock)
        self.ready = asyncio.Event()
        self.counters: dict[str, int] = {}
        self.checkpoints: deque[tuple[str, str, int]] = deque(maxlen=1000)
        """The newest checkpoints written (model, segment, version), for logs and tests."""
        self._store, self._own_store = store, store is None
        self._clock = clock
        self._queues: dict[tuple[str, int], deque[Any]] = {}
        self._waiting_since: dict[tuple[str, int], float] = {}
        self._positions: dict[str, int] = {}
        self._unlearnable: dict[tuple[str, str], str] = {}
        self._publisher = Publisher(settings)
        self._models = set(config.models)
        self.gate: Gate | None = None

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event | None = None) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from scorer.kafka import aiokafka_options

        stop = stop or asyncio.Event()
        if self._store is None:
            from scorer.store import CassandraModelStore

            self._store = await asyncio.to_thread(CassandraModelStore, self.settings)
        cfg = self.config
        topics = [cfg.events_topic, cfg.labels_topic] + ([cfg.alerts_topic] if cfg.reset_on_drift else [])
        if cfg.promote == "gated":
            self.gate = Gate(self.settings, cfg.gate, self._store, self._publisher, join_ttl=cfg.join_ttl,
                             join_max=cfg.join_max)
            topics += [cfg.predictions_topic, cfg.shadow_topic]
        consumer = AIOKafkaConsumer(
            *topics, **aiokafka_options(self.settings), group_id=cfg.group_id or f"{self.settings.app_id}-learn",
            auto_offset_reset="earliest" if cfg.from_beginning else "latest", enable_auto_commit=False,
            max_poll_records=5000, isolation_level="read_committed")  # predictions and alerts: committed only
        await self._publisher.start()
        await consumer.start()
        last_commit = last_poll = self._clock()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                if consumer.assignment() and not self.ready.is_set():
                    self.ready.set()
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.topic, tp.partition, record)
                await self._drain()
                self._throttle(consumer, TopicPartition)
                self.events.expire()
                await self._checkpoint(self.learner.due())
                if self.gate is not None:
                    await self.gate.step()
                now = self._clock()
                if now - last_poll >= cfg.poll_interval:
                    last_poll = now
                    await self._poll_pointers()
                if now - last_commit >= cfg.commit_interval:
                    last_commit = now
                    await self._commit(consumer, TopicPartition)
            # No forced checkpoint: the rest is learned again after a restart, on the same boundaries.
            await self._commit(consumer, TopicPartition)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            await self._publisher.stop()
            if self._own_store and self._store is not None:
                self._store.close()

    def _throttle(self, consumer: Any, topic_partition: Any) -> None:
        """Stop fetching a label partition held back by a waiting label once its queue is long (memory bound)."""
        for (topic, partition), queue in self._queues.items():
            tp = topic_partition(topic, partition)
            if len(queue) > _MAX_QUEUED and tp not in consumer.paused():
                consumer.pause(tp)
            elif len(queue) <= _MAX_QUEUED // 2 and tp in consumer.paused():
                consumer.resume(tp)

    async def _commit(self, consumer: Any, topic_partition: Any) -> None:
        points = {topic_partition(t, p): offset for (t, p), offset in self.marks.commit_points().items()}
        if points:
            await consumer.commit(points)

    # ------------------------------------------------------------------ input

    def _take(self, topic: str, partition: int, record: Any) -> None:
        tp = (topic, partition)
        cfg = self.config
        if topic == cfg.alerts_topic and cfg.reset_on_drift:
            self._on_alert(record.value)
            return
        if self.gate is not None and topic in (cfg.predictions_topic, cfg.shadow_topic):
            self.gate.on_prediction(loads_label(record.value))  # trial evidence only: not part of the offsets story
            return
        self.marks.add(tp, record.offset)
        if topic == cfg.labels_topic:
            self._queues.setdefault(tp, deque()).append(record)
            return
        decoded = decode_one(0, record.value)
        if not isinstance(decoded, Event):
            self.marks.resolve(tp, record.offset)  # the scoring worker dead-letters malformed events
            return
        if decoded.model not in self._models:
            self.marks.resolve(tp, record.offset)
            self.events.add(decoded.id, (OTHER, self._clock()))
            return
        self.events.add(decoded.id, CachedEvent(decoded.model, decoded.segment, decoded.features, tp, record.offset,
                                                self._clock(), decoded.text))

    def _evicted(self, item: Any) -> None:
        if isinstance(item, CachedEvent):
            self.marks.resolve(item.partition, item.offset)

    async def _drain(self) -> None:
        """Take labels per partition in order until one must wait for its event, then learn them."""
        taken: list[tuple[str, int, Any]] = []  # (partition key, offset, Example | dead letter | None)
        now = self._clock()
        for tp, queue in self._queues.items():
            key = f"{tp[0]}/{tp[1]}"
            while queue:
                record = queue[0]
                event_id, label = label_value(loads_label(record.value))
                if self.gate is not None and event_id is not None:
                    self.gate.on_label(event_id, label)
                item: Any = None
                if event_id is None:
                    item = (record, tp, "malformed label message (needs an object with a string id)", None)
                else:
                    event = self.events.get(event_id)
                    if event is None:
                        since = self._waiting_since.setdefault(tp, now)
                        if now - since < self.config.label_wait:
                            break  # hold the partition: its later labels must not overtake this one
                        item = (record, tp, f"unknown id {event_id!r}: no event seen within the join", None)
                    elif isinstance(event, CachedEvent):
                        item = await self._example(record, tp, key, event_id, event, label)
                        if isinstance(item, str):
                            item = (record, tp, item, event)
                    elif event[0] is DONE:
                        item = (record, tp, f"duplicate label for id {event_id!r}", None)
                    else:  # an event of a model this learner does not learn
                        self.marks.resolve(tp, record.offset)
                self._waiting_since.pop(tp, None)
                queue.popleft()
                taken.append((key, record.offset, item))
        await self._learn(taken)

    async def _learn(self, taken: list[tuple[str, int, Any]]) -> None:
        """Learn in order, cutting a segment's checkpoint exactly when it reaches ``every_labels`` new labels
        (so checkpoints fall on the same labels however the input was batched), its dead letters first."""
        chunk: list[Example] = []
        dead: list[Any] = []
        counts: dict[int, int] = {}
        for key, offset, item in taken:
            self._positions[key] = offset + 1
            if isinstance(item, Example):
                chunk.append(item)
                seg = item.segment
                counts[id(seg)] = counts.get(id(seg), seg.pending_labels) + 1
                if counts[id(seg)] < self.config.every_labels:
                    continue
                dead.extend(rejected_letters(self.learner.learn(chunk)))
                chunk, counts = [], {}
                if dead:
                    await self._dead_letter(dead)
                    dead = []
                await self._checkpoint(self.learner.due())
            elif item is not None:
                dead.append(item)
        dead.extend(rejected_letters(self.learner.learn(chunk)))
        if dead:
            await self._dead_letter(dead)


    async def _example(self, record: Any, tp: tuple[str, int], key: str, event_id: str, event: CachedEvent,
                       label: Any) -> Example | str | None:
        """An example to learn, a dead-letter reason, or None (already learned before a restart)."""
        seg = await self._segment(event.model, event.segment)
        if isinstance(seg, str):
            return seg
        self.events.replace(event_id, (DONE, event.born))  # its label is taken: a second one is a duplicate
        if record.offset < seg.offsets.get(key, 0):
            self._count("replayed_skipped")
            self.marks.resolve(tp, record.offset)
            self.marks.resolve(event.partition, event.offset)
            return None
        if seg.paused:
            return "segment paused: a pointer was changed by hand (scorer learn resume MODEL SEGMENT)"
        target, reason = target_of(label, seg.classes)
        if reason is not None:
            return reason
        return Example(seg, event.features, target,
                       (("label", tp, record.offset), ("event", event.partition, event.offset)), record, event.text)

    async def _dead_letter(self, dead: list[tuple[Any, tuple[str, int], str, Any]]) -> None:
        messages = []
        for record, tp, reason, event in dead:
            value: dict[str, Any] = {"reason": reason, "topic": tp[0], "partition": tp[1], "offset": record.offset,
                                     "input": (record.value or b"").decode("utf-8", "replace")[:2000]}
            if isinstance(event, CachedEvent):
                value.update(model=event.model, segment=event.segment)
            messages.append((self.config.dead_letter_topic, record.key or b"", value))
            self._count("dead_letters")
        await self._publisher.send_many(messages)
        for record, tp, _, event in dead:
            self.marks.resolve(tp, record.offset)
            if isinstance(event, CachedEvent):
                self.marks.resolve(event.partition, event.offset)

    # ------------------------------------------------------------------ segments

    async def _segment(self, model: str, segment: str) -> Segment | str:
        """The learning segment, loaded on first use; a string says why it cannot learn (dead-letter reason)."""
        seg = self.learner.segments.get((model, segment))
        if seg is not None:
            return seg
        known = self._unlearnable.get((model, segment))
        if known is not None:
            return known
        if len(self.learner.segments) >= self.config.max_segments:
            return f"segment not learned: this learner already holds --max-segments {self.config.max_segments}"
        try:
            seg = await asyncio.to_thread(load_segment, self._store, self.learner, self.config, model, segment, None)
        except ScorerError as exc:
            reason = f"segment cannot learn: {exc}"
            if len(self._unlearnable) < self.config.max_segments:
                self._unlearnable[(model, segment)] = reason
            return reason
        log.info("%s/%s learns from version %s (t=%s, %s labels so far)%s", model, segment, seg.base_version,
                 seg.learned.state.t, seg.labels, " [paused]" if seg.paused else "")
        return seg

    # ------------------------------------------------------------------ checkpoints and pointers

    async def _checkpoint(self, due: list[Segment]) -> None:
        if not due:
            return
        cuts = [(seg, weights, examples) for seg, (weights, examples)
                in zip(due, self.learner.cut_many(due, self._label_positions()), strict=True)]
        by_model: dict[str, list[Any]] = {}
        for seg, weights, examples in cuts:
            by_model.setdefault(seg.model, []).append((seg, weights, examples))
        for model, items in by_model.items():
            for seg, _, _ in items:
                seg.checkpointing = True
            try:
                published = await asyncio.to_thread(
                    self._store.publish_many, model,
                    [(seg.segment, weights, {"arch": "sgd", "labels": seg.labels, "from_version": seg.base_version},
                      None) for seg, weights, _ in items], author=self.config.actor)
            finally:
                for seg, _, _ in items:
                    seg.checkpointing = False
            for seg, _, examples in items:
                version = published[seg.segment]
                self.checkpoints.append((model, seg.segment, version))
                self._count("checkpoints")
                for example in examples:  # its label and event are safe now
                    for _, tp, offset in example.records:
                        self.marks.resolve(tp, offset)
                if self.config.promote == "direct" and not seg.paused:
                    await asyncio.to_thread(self._store.activate, model, seg.segment, version,
                                            actor=self.config.actor,
                                            reason=f"learn checkpoint: {seg.labels} labels learned")
                    seg.expected_live = version
                    await self._notify(model, seg.segment, version)
                elif self.gate is not None and not seg.paused:
                    await self.gate.offer(model, seg.segment, version, seg.expected_live, seg.classes)

    def _label_positions(self) -> dict[str, int]:
        return {key: pos for key, pos in self._positions.items()
                if key.rsplit("/", 1)[0] == self.config.labels_topic}

    async def _notify(self, model: str, segment: str, version: int) -> None:
        from scorer.kafka.notices import notice_fields, notice_key

        if not self.settings.changes_topic:
            return
        try:
            await self._publisher.send(self.settings.changes_topic, notice_key(model),
                                       notice_fields(model, segment, "activate", version))
        except Exception:  # scoring workers' pointer polls catch the change anyway
            log.warning("could not publish a model-changes notice for %s/%s", model, segment, exc_info=True)

    async def _poll_pointers(self) -> None:
        """Pause segments whose live pointer someone else moved; resume those that got ``learn resume``."""
        for model in sorted({seg.model for seg in self.learner.segments.values()}):
            try:
                rows = await asyncio.to_thread(self._store.active, model)
            except ScorerError:
                log.exception("reading active_models of %s failed", model)
                continue
            for seg in [s for s in self.learner.segments.values() if s.model == model]:
                row = rows.get(seg.segment)
                live = row.version if row is not None else None
                if self.gate is not None:
                    self.gate.pointer(model, seg.segment, row)
                if seg.paused:
                    latest = await asyncio.to_thread(self._store.activations, model, seg.segment, 1)
                    if latest and (latest[0].reason or "").startswith(RESUME_REASON):
                        await self._resume(seg)
                    continue
                if live == seg.expected_live:
                    continue
                latest = await asyncio.to_thread(self._store.activations, model, seg.segment, 1)
                if latest and latest[0].actor == self.config.actor:
                    seg.expected_live = live
                    continue
                seg.paused = True
                self._count("paused")
                log.warning("%s/%s: live version moved to %s by %s; learning paused until `scorer learn resume`",
                            model, seg.segment, live, latest[0].actor if latest else "?")

    async def _resume(self, seg: Segment) -> None:
        if seg.pending:
            return  # a checkpoint of the paused segment is being cut; resume at the next poll
        offsets = dict(seg.offsets)
        offsets.update(self._label_positions())
        self.learner.remove(seg.model, seg.segment)
        fresh = await asyncio.to_thread(load_segment, self._store, self.learner, self.config, seg.model,
                                        seg.segment, offsets)
        fresh.paused = False
        self._count("resumed")
        log.info("%s/%s: learning resumed from version %s", seg.model, seg.segment, fresh.base_version)

    def _on_alert(self, raw: bytes | None) -> None:
        try:
            alert = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return
        if not isinstance(alert, dict) or alert.get("kind") != "drift":
            return
        seg = self.learner.segments.get((str(alert.get("model")), str(alert.get("segment"))))
        if seg is not None and not seg.paused:
            self.learner.restart_schedule(seg)
            self._count("schedule_resets")
            log.info("%s/%s: drift alert, learning-rate schedule restarted", seg.model, seg.segment)


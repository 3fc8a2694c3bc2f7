"""The Cassandra model store: versions, chunked weights, live pointers and their log (schema/002_models.cql).

Consistency rules, each one relied on by a test:
- Publish claims a version number with an LWT (``INSERT ... IF NOT EXISTS`` on ``version_claims``), writes
  every chunk, and only then the ``model_versions`` row with status 'complete' and the sha256. Readers
  trust complete rows only and verify the checksum, so a half-published version is never served.
- ``active_models`` only ever gets plain writes (people swap by hand with a plain ``UPDATE``), so no LWT
  touches it; ``version_claims`` only ever gets LWTs (unless the opt-in ``cassandra_claim_fallback`` finds
  Paxos without a quorum: see store/claims.py). An LWT that times out has an unknown outcome and is
  settled by re-reading the claim at serial consistency (its ``owner`` says who won).
- A release is one single-partition batch on ``active_models`` (atomic and isolated: a reader of the model
  partition sees all of it or none), and ``active()`` reads that partition in one unpaged request.
- A failed request raises StoreUnavailable/StoreError naming hosts and model/segment/version; it is never
  reported as "not found". ``None`` means no row.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    DriverException,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import Cluster, NoHostAvailable, ResultSet, Session
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionBusy, ConnectionException
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from cassandra.util import uuid_from_time

from scorer.config import Settings
from scorer.errors import (
    ChecksumMismatch,
    ConfigError,
    InvalidWeights,
    NotFound,
    ScorerError,
    StoreError,
    StoreUnavailable,
)
from scorer.models import ModelWeights, build

from . import rules
from .base import Activation, ActiveModel, Progress, PublishItem, VersionInfo, default_actor
from .claims import PlainClaims, batch_not_applied, lwt_outcome_unknown, replicas_unavailable
from .connection import connect

log = logging.getLogger(__name__)

COMPLETE = "complete"
MAX_CLAIM_ROUNDS = 64
"""Each round of contended claims hands out at least one number per segment, so 64 covers 64 racers."""
ORPHAN_GRACE = timedelta(hours=1)
"""A claimed version with chunks but no version row this old is a crashed publish; prune removes it."""
PAGE_BYTES = 4 * 1024 * 1024
"""Chunk reads fetch about this many bytes per page."""
IN_GROUP = 64
"""Partitions per multi-partition read (``segment IN ?``): one request instead of many, kept small."""
BYTES_IN_FLIGHT = 4 * 1024 * 1024
"""Chunk writes in flight at once, in bytes: more only fills the socket buffer (ConnectionBusy)."""

# Every DML statement, by name, in one place; {ks} is the validated keyspace (the only interpolation).
STATEMENTS: dict[str, str] = {
    "active_model": "SELECT segment, version, canary_version, canary_fraction, shadow_version, updated_at "
                    "FROM {ks}.active_models WHERE model = ?",
    "active_segment": "SELECT segment, version, canary_version, canary_fraction, shadow_version, updated_at "
                      "FROM {ks}.active_models WHERE model = ? AND segment = ?",
    "models": "SELECT DISTINCT model FROM {ks}.active_models",
    "set_primary": "UPDATE {ks}.active_models SET version = ?, updated_at = ?, updated_by = ?, reason = ? "
                   "WHERE model = ? AND segment = ?",
    "set_primary_clear_canary": "UPDATE {ks}.active_models SET version = ?, canary_version = null, "
                                "canary_fraction = null, updated_at = ?, updated_by = ?, reason = ? "
                                "WHERE model = ? AND segment = ?",
    "set_canary": "UPDATE {ks}.active_models SET canary_version = ?, canary_fraction = ?, updated_at = ?, "
                  "updated_by = ?, reason = ? WHERE model = ? AND segment = ?",
    "set_shadow": "UPDATE {ks}.active_models SET shadow_version = ?, updated_at = ?, updated_by = ?, reason = ? "
                  "WHERE model = ? AND segment = ?",
    "clear_canary": "UPDATE {ks}.active_models SET canary_version = null, canary_fraction = null, updated_at = ?, "
                    "updated_by = ?, reason = ? WHERE model = ? AND segment = ?",
    "log_activation": "INSERT INTO {ks}.activations (model, segment, at, id, actor, action, from_version, "
                      "to_version, canary_version, canary_fraction, reason, release_id) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "activations": "SELECT model, segment, at, actor, action, from_version, to_version, canary_version, "
                   "canary_fraction, reason, release_id FROM {ks}.activations WHERE model = ? AND segment = ? "
                   "LIMIT ?",
    "activation_log": "SELECT model, segment, at, actor, action, from_version, to_version, canary_version, "
                      "canary_fraction, reason, release_id FROM {ks}.activations WHERE model = ? AND segment = ?",
    "version": "SELECT * FROM {ks}.model_versions WHERE model = ? AND segment = ? AND version = ?",
    "versions": "SELECT * FROM {ks}.model_versions WHERE model = ? AND segment = ?",
    "version_numbers": "SELECT version, status FROM {ks}.model_versions WHERE model = ? AND segment = ?",
    "newest_version": "SELECT version FROM {ks}.model_versions WHERE model = ? AND segment = ? LIMIT 1",
    "insert_version": "INSERT INTO {ks}.model_versions (model, segment, version, arch, feature_names, classes, "
                      "metadata, metrics, stats, size_bytes, n_chunks, chunk_size, checksum, created_at, author, "
                      "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "delete_version": "DELETE FROM {ks}.model_versions WHERE model = ? AND segment = ? AND version = ?",
    "insert_chunk": "INSERT INTO {ks}.model_chunks (model, segment, version, chunk, data) VALUES (?, ?, ?, ?, ?)",
    "chunks_in": "SELECT segment, chunk, data FROM {ks}.model_chunks WHERE model = ? AND segment IN ? "
                 "AND version = ?",
    "versions_in": "SELECT * FROM {ks}.model_versions WHERE model = ? AND segment IN ? AND version = ?",
    "newest_versions_in": "SELECT segment, version FROM {ks}.model_versions WHERE model = ? AND segment IN ? "
                          "PER PARTITION LIMIT 1",
    "newest_claims_in": "SELECT segment, version FROM {ks}.version_claims WHERE model = ? AND segment IN ? "
                        "PER PARTITION LIMIT 1",
    "any_chunk": "SELECT chunk FROM {ks}.model_chunks WHERE model = ? AND segment = ? AND version = ? LIMIT 1",
    "delete_chunks": "DELETE FROM {ks}.model_chunks WHERE model = ? AND segment = ? AND version = ?",
    "claims": "SELECT version, claimed_at FROM {ks}.version_claims WHERE model = ? AND segment = ?",
    "claim": "INSERT INTO {ks}.version_claims (model, segment, version, owner, claimed_at) VALUES (?, ?, ?, ?, ?) "
             "IF NOT EXISTS",
    "claim_owner": "SELECT owner FROM {ks}.version_claims WHERE model = ? AND segment = ? AND version = ?",
    "add_segment": "INSERT INTO {ks}.model_segments (model, segment, last_published) VALUES (?, ?, ?)",
    "segments": "SELECT segment FROM {ks}.model_segments WHERE model = ?",
    "any_segment": "SELECT segment FROM {ks}.model_segments WHERE model = ? LIMIT 1",
}

_UNREACHABLE = (NoHostAvailable, OperationTimedOut, Unavailable, ReadTimeout, WriteTimeout, ConnectionException)


def _groups(keys: Sequence[tuple[str, str, int]], weight: Callable[[tuple[str, str, int]], int],
            limit: int | None) -> list[tuple[tuple[str, int], list[str]]]:
    """Pack keys into ``segment IN ?`` groups: same model and version, at most IN_GROUP segments each and,
    with ``limit``, a total weight of at most ``limit`` (a heavier key gets a group of its own)."""
    by_model_version: dict[tuple[str, int], list[str]] = {}
    for model, segment, version in keys:
        by_model_version.setdefault((model, version), []).append(segment)
    groups = []
    for (model, version), segments in by_model_version.items():
        current: list[str] = []
        total = 0
        for segment in segments:
            size = weight((model, segment, version))
            if current and (len(current) >= IN_GROUP or (limit is not None and total + size > limit)):
                groups.append(((model, version), current))
                current, total = [], 0
            current.append(segment)
            total += size
        if current:
            groups.append(((model, version), current))
    return groups


def _busy(exc: BaseException) -> bool:
    """True when the driver did not send the request because its connection's write buffer was full."""
    if isinstance(exc, ConnectionBusy):
        return True
    return isinstance(exc, NoHostAvailable) and bool(exc.errors) and all(
        isinstance(err, ConnectionBusy) for err in exc.errors.values())


def _aware(value: datetime | None) -> datetime | None:
    # The driver returns naive UTC datetimes for timestamp columns.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class CassandraModelStore:
    """ModelStore on Cassandra. One instance owns one cluster connection and its prepared statements.

    Thread-safe: methods may be called from several threads (``asyncio.to_thread``). Never runs DDL; the
    schema comes from ``scorer schema apply``.
    """

    def __init__(self, settings: Settings, *, chunk_size: int = rules.DEFAULT_CHUNK_SIZE, concurrency: int = 64,
                 session: Session | None = None) -> None:
        """Connect (or use ``session``, which then stays the caller's to close) and prepare every statement.

        Raises StoreUnavailable naming the hosts when Cassandra cannot be reached (within the connect
        timeout), StoreError when the keyspace lacks the tables.
        """
        self.settings = settings
        self.chunk_size = rules.check_chunk_size(chunk_size)
        if not 1 <= concurrency <= 1024:
            raise ConfigError(f"concurrency must be 1..1024 requests in flight; got {concurrency!r}")
        self.concurrency = concurrency
        self._hosts = ", ".join(f"{host}:{settings.cassandra_port}" for host in settings.cassandra_hosts)
        if session is None:
            cluster, session = connect(settings)
            self._owned: Cluster | None = cluster
        else:
            self._owned = None
        self._session = session
        self._plain_claims: PlainClaims | None = None
        try:
            self._q = self._prepare()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> CassandraModelStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the connection this store opened (a session passed in stays open)."""
        if self._owned is not None:
            self._owned.shutdown()
            self._owned = None

    # ------------------------------------------------------------------ plumbing

    def _prepare(self) -> dict[str, PreparedStatement]:
        prepared = {}
        for name, text in STATEMENTS.items():
            try:
                prepared[name] = self._session.prepare(text.format(ks=self.settings.keyspace))
            except Exception as exc:  # noqa: BLE001 - mapped to one readable error
                raise self._error(exc, f"prepare statement {name!r}") from exc
        prepared["active_model"].fetch_size = None  # one unpaged read: a paged one is not isolated
        prepared["activation_log"].fetch_size = 100
        return prepared

    def _error(self, exc: BaseException, what: str) -> ScorerError:
        """A driver error as a StoreUnavailable/StoreError saying what was being done and where."""
        if isinstance(exc, ScorerError):
            return exc
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if isinstance(exc, _UNREACHABLE):
            kind = type(exc).__name__
            return StoreUnavailable(f"{what}: Cassandra at {self._hosts} did not answer ({kind}: {detail})")
        if isinstance(exc, InvalidRequest) and ("unconfigured table" in detail or "does not exist" in detail):
            return StoreError(f"{what}: keyspace {self.settings.keyspace!r} lacks the model tables ({detail}); "
                              f"run `scorer schema apply`")
        if isinstance(exc, CoordinationFailure | DriverException):
            return StoreError(f"{what}: Cassandra at {self._hosts} refused ({type(exc).__name__}: {detail})")
        return StoreError(f"{what}: {type(exc).__name__}: {detail}")

    def _execute(self, statement: Any, params: Sequence[Any] | None, what: str,
                 consistency: int | None = None) -> ResultSet:
        try:
            if consistency is not None:
                statement = statement.bind(params)
                statement.consistency_level = consistency
                return self._session.execute(statement)
            return self._session.execute(statement, params)
        except Exception as exc:  # noqa: BLE001 - every driver failure is mapped, never swallowed
            raise self._error(exc, what) from exc

    def _rows(self, result: ResultSet, what: str) -> Iterator[Any]:
        """Iterate every page; a failure fetching a later page is mapped like any other."""
        try:
            yield from result
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, what) from exc

    def _concurrent(self, work: Sequence[tuple[Any, Sequence[Any]]], progress: Progress | None = None,
                    phase: str = "", concurrency: int | None = None) -> list[tuple[bool, Any]]:
        """Run statements with bounded concurrency; per-statement (ok, ResultSet | exception), in order.

        A request the driver refused to send because the connection's socket buffer was full
        (ConnectionBusy) never reached Cassandra, so it is retried here with less concurrency.
        """
        if not work:
            return []
        limit = concurrency or self.concurrency
        out = self._run(work, limit, progress, phase)
        for attempt in range(8):
            busy = [index for index, (ok, result) in enumerate(out) if not ok and _busy(result)]
            if not busy:
                break
            time.sleep(0.02 * 2**attempt)
            limit = max(1, limit // 2)
            for index, result in zip(busy, self._run([work[i] for i in busy], limit, None, ""), strict=True):
                out[index] = result
        return out

    def _run(self, work: Sequence[tuple[Any, Sequence[Any]]], concurrency: int, progress: Progress | None,
             phase: str) -> list[tuple[bool, Any]]:
        try:
            if progress is None:
                return list(execute_concurrent(self._session, work, concurrency=concurrency,
                                               raise_on_first_error=False))
            out = []
            step = max(1, len(work) // 100)
            for ok, result in execute_concurrent(self._session, work, concurrency=concurrency,
                                                 raise_on_first_error=False, results_generator=True):
                out.append((ok, result))
                if len(out) % step == 0 or len(out) == len(work):
                    progress(phase, len(out), len(work))
            return out
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, f"run {len(work)} requests") from exc

    def _all_ok(self, results: list[tuple[bool, Any]], labels: Sequence[str], what: str) -> list[ResultSet]:
        for (ok, result), label in zip(results, labels, strict=True):
            if not ok:
                raise self._error(result, f"{what}{label}") from result
        return [result for _, result in results]

    # ------------------------------------------------------------------ reads

    def active(self, model: str, segment: str | None = None) -> dict[str, ActiveModel]:
        """The live pointers of a model (whole partition in one unpaged read) or of one segment."""
        rules.check_model(model)
        if segment is None:
            result = self._execute(self._q["active_model"], (model,), f"read active versions of {model}")
        else:
            rules.check_segment(segment)
            result = self._execute(self._q["active_segment"], (model, segment),
                                   f"read active version of {rules.where(model, segment)}")
        return {row.segment: ActiveModel(model, row.segment, row.version, row.canary_version, row.canary_fraction,
                                         row.shadow_version, _aware(row.updated_at))
                for row in self._rows(result, f"read active versions of {model}")}

    def models(self) -> list[str]:
        result = self._execute(self._q["models"], (), "list models")
        return sorted(row.model for row in self._rows(result, "list models"))

    def _info(self, row: Any) -> VersionInfo | None:
        if row is None or row.status != COMPLETE:
            return None
        classes = self._json_column(row, "classes", None)
        return VersionInfo(
            model=row.model, segment=row.segment, version=row.version, arch=row.arch,
            feature_names=tuple(row.feature_names or ()), classes=tuple(classes) if classes is not None else None,
            metadata=self._json_column(row, "metadata", {}), metrics=self._json_column(row, "metrics", {}),
            stats=self._json_column(row, "stats", {}), size_bytes=row.size_bytes, n_chunks=row.n_chunks,
            checksum=row.checksum, created_at=_aware(row.created_at), author=row.author,
        )

    @staticmethod
    def _json_column(row: Any, column: str, default: Any) -> Any:
        """A JSON column of a version row; a corrupt one is a StoreError naming the version and the column."""
        raw = getattr(row, column)
        if not raw:
            return default
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{rules.where(row.model, row.segment, row.version)}: version row column {column} is "
                             f"not JSON ({exc}): {raw[:40]!r}") from None

    def version_info(self, model: str, segment: str, version: int) -> VersionInfo | None:
        """A complete version's row, or None when there is none (an incomplete row counts as none)."""
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        what = f"read {rules.where(model, segment, version)}"
        return self._info(self._execute(self._q["version"], (model, segment, version), what).one())

    def versions(self, model: str, segment: str | None = None) -> list[VersionInfo]:
        """Complete versions, by segment then newest first."""
        rules.check_model(model)
        segments = [rules.check_segment(segment)] if segment is not None else self._segments(model)
        results = self._all_ok(
            self._concurrent([(self._q["versions"], (model, seg)) for seg in segments]), segments,
            f"list versions of {model}/")
        out: list[VersionInfo] = []
        for seg, result in zip(segments, results, strict=True):
            out.extend(info for row in self._rows(result, f"list versions of {rules.where(model, seg)}")
                       if (info := self._info(row)) is not None)
        return out

    def _segments(self, model: str) -> list[str]:
        """Every segment ever published for the model, plus any with a live pointer (set by hand)."""
        published = self._execute(self._q["segments"], (model,), f"list segments of {model}")
        names = {row.segment for row in self._rows(published, f"list segments of {model}")}
        names.update(self.active(model))
        return sorted(names)

    def load(self, model: str, segment: str, version: int | None = None) -> ModelWeights:
        """Weights of a version (None: the active one), checksum verified."""
        rules.check_model(model)
        rules.check_segment(segment)
        if version is None:
            pointer = self.active(model, segment).get(segment)
            if pointer is None or pointer.version is None:
                raise NotFound(f"{rules.where(model, segment)} has no active version")
            version = pointer.version
        key = (model, segment, version)
        result = self.load_many([key])[key]
        if isinstance(result, Exception):
            raise result
        return result

    def load_many(self, keys: Iterable[tuple[str, str, int]]
                  ) -> dict[tuple[str, str, int], ModelWeights | Exception]:
        """Weights for many versions at once, checksums verified.

        Version rows, then chunks, are read with concurrent multi-partition requests (``segment IN ?``,
        grouped by model and version, at most ``IN_GROUP`` partitions or about ``PAGE_BYTES`` each). Each key
        maps to its weights or to the error for that key (NotFound, ChecksumMismatch, StoreUnavailable,
        ...); one bad key never hides the others.
        """
        keys = list(keys)  # iterated twice below; callers may pass a generator
        out: dict[tuple[str, str, int], ModelWeights | Exception] = {}
        wanted: list[tuple[str, str, int]] = []
        for key in dict.fromkeys(keys):
            try:
                model, segment, version = key
                rules.check_model(model)
                rules.check_segment(segment)
                rules.check_version(version)
            except (ValueError, TypeError) as exc:
                out[key] = exc if isinstance(exc, ScorerError) else ConfigError(f"bad key {key!r}: {exc}")
                continue
            wanted.append(key)

        # Phase 1: version rows. Only complete rows are trusted.
        groups = _groups(wanted, lambda key: 1, limit=None)
        results = self._concurrent([(self._q["versions_in"], (model, segs, version))
                                    for (model, version), segs in groups])
        rows: dict[tuple[str, str, int], Any] = {}
        for ((model, version), segs), (ok, result) in zip(groups, results, strict=True):
            what = f"read versions {version} of {model}/{segs[0]}" + (f" and {len(segs) - 1} more" if segs[1:] else "")
            try:
                if not ok:
                    raise self._error(result, what) from result
                found = {row.segment: row for row in self._rows(result, what)}
            except ScorerError as exc:
                out.update({(model, seg, version): exc for seg in segs})
                continue
            for seg in segs:
                row = found.get(seg)
                if row is None or row.status != COMPLETE:
                    out[(model, seg, version)] = NotFound(
                        f"{rules.where(model, seg, version)} does not exist or is not complete")
                    continue
                try:  # a corrupt row must not size the chunk read (fetch_size) or anything else
                    rules.check_version_row(n_chunks=row.n_chunks, size_bytes=row.size_bytes,
                                            checksum=row.checksum, where=rules.where(model, seg, version))
                except ChecksumMismatch as exc:
                    out[(model, seg, version)] = exc
                    continue
                rows[(model, seg, version)] = row

        # Phase 2: chunks, packed so that one request carries about PAGE_BYTES at most.
        groups = _groups(list(rows), lambda key: rows[key].size_bytes, limit=PAGE_BYTES)
        work = []
        for (model, version), segs in groups:
            bound = self._q["chunks_in"].bind((model, segs, version))
            members = [rows[(model, seg, version)] for seg in segs]
            if sum(row.size_bytes for row in members) <= PAGE_BYTES:
                bound.fetch_size = sum(row.n_chunks for row in members) + 1  # one page
            else:  # one large version: pages of about PAGE_BYTES
                bound.fetch_size = max(1, PAGE_BYTES // max(row.chunk_size or self.chunk_size for row in members))
            work.append((bound, None))
        for ((model, version), segs), (ok, result) in zip(groups, self._concurrent(work), strict=True):
            what = f"read chunks of {rules.where(model, segs[0], version)}" + (
                f" and {len(segs) - 1} more" if segs[1:] else "")
            try:
                if not ok:
                    raise self._error(result, what) from result
                chunks: dict[str, list[tuple[int, bytes]]] = {seg: [] for seg in segs}
                for row in self._rows(result, what):
                    chunks.setdefault(row.segment, []).append((row.chunk, row.data))
            except ScorerError as exc:
                out.update({(model, seg, version): exc for seg in segs})
                continue
            for seg in segs:
                key = (model, seg, version)
                out[key] = self._decode(key, rows[key], sorted(chunks[seg], key=lambda item: item[0]))
        return {key: out[key] for key in dict.fromkeys(keys) if key in out}

    @staticmethod
    def _decode(key: tuple[str, str, int], row: Any, chunks: list[tuple[int, bytes]]) -> ModelWeights | Exception:
        where = rules.where(*key)
        try:
            data = rules.assemble(chunks, n_chunks=row.n_chunks, size_bytes=row.size_bytes, checksum=row.checksum,
                                  where=where)
            return ModelWeights.from_bytes(data)
        except InvalidWeights as exc:
            return InvalidWeights(f"{where}: stored weights do not decode: {exc}")
        except ScorerError as exc:
            return exc

    def activations(self, model: str, segment: str | None = None, limit: int = 50) -> list[Activation]:
        """The activation log, newest first (for a whole model: merged across its segments)."""
        rules.check_model(model)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be a positive whole number; got {limit!r}")
        segments = [rules.check_segment(segment)] if segment is not None else self._segments(model)
        results = self._all_ok(
            self._concurrent([(self._q["activations"], (model, seg, limit)) for seg in segments]), segments,
            f"read activation log of {model}/")
        entries = [self._activation(row) for seg, result in zip(segments, results, strict=True)
                   for row in self._rows(result, f"read activation log of {rules.where(model, seg)}")]
        entries.sort(key=lambda entry: (entry.at, entry.segment), reverse=True)
        return entries[:limit]

    @staticmethod
    def _activation(row: Any) -> Activation:
        return Activation(row.model, row.segment, _aware(row.at), row.actor, row.action, row.from_version,
                          row.to_version, row.canary_version, row.canary_fraction, row.reason, row.release_id)

    def _log(self, model: str, segment: str) -> Iterator[Activation]:
        what = f"read activation log of {rules.where(model, segment)}"
        result = self._execute(self._q["activation_log"], (model, segment), what)
        return (self._activation(row) for row in self._rows(result, what))

    # ------------------------------------------------------------------ publish

    def publish(self, model: str, segment: str, weights: ModelWeights, *, metrics: dict[str, Any] | None = None,
                stats: dict[str, Any] | None = None, author: str | None = None, activate: bool = False,
                reason: str | None = None) -> int:
        """Store a new version (validated first) and return its number; optionally make it live."""
        version = self.publish_many(model, [(segment, weights, metrics, stats)], author=author)[segment]
        if activate:
            try:
                self.activate(model, segment, version, actor=author, reason=reason)
            except ScorerError as exc:  # say that the version exists, so nobody publishes it twice
                raise type(exc)(f"{rules.where(model, segment, version)} was published but not activated: {exc}") \
                    from exc
        return version

    def publish_many(self, model: str, items: Iterable[PublishItem], *, author: str | None = None,
                     activate: bool = False, reason: str | None = None,
                     progress: Progress | None = None) -> dict[str, int]:
        """Publish one version per segment, concurrently; with ``activate``, switch them all in one release.

        Everything is validated (names, ``build(weights)``, JSON columns) before the first write. If any
        segment fails, the others stay published (complete and safe) but nothing is activated.
        """
        rules.check_model(model)
        author = rules.check_text(author, "author") or default_actor()
        reason = rules.check_text(reason, "reason")
        prepared = [self._prepare_item(model, item) for item in items]
        if not prepared:
            raise ConfigError(f"publish {model}: no weights given")
        seen: set[str] = set()
        for item in prepared:
            if item["segment"] in seen:
                raise ConfigError(f"publish {model}: segment {item['segment']!r} given twice")
            seen.add(item["segment"])
        if progress:
            progress("validate", len(prepared), len(prepared))

        segments = [item["segment"] for item in prepared]
        # One partition (the model): a single batch registers every segment.
        now = rules.now_ms()
        register = BatchStatement(batch_type=BatchType.UNLOGGED)
        for seg in segments:
            register.add(self._q["add_segment"], (model, seg, now))
        self._execute(register, None, f"register {len(segments)} segments of {model}")
        versions = self._claim_versions(model, segments, progress)

        # Chunks first; a version row only for a segment whose every chunk is stored.
        work, owners = [], []
        for item in prepared:
            seg, version = item["segment"], versions[item["segment"]]
            for number, blob in enumerate(item["chunks"]):
                work.append((self._q["insert_chunk"], (model, seg, version, number, blob)))
                owners.append(seg)
        failed: dict[str, BaseException] = {}
        largest = max(len(blob) for item in prepared for blob in item["chunks"])  # small models: full concurrency
        chunk_concurrency = max(1, min(self.concurrency, BYTES_IN_FLIGHT // max(1, largest)))
        for (ok, result), seg in zip(self._concurrent(work, progress, "chunks", chunk_concurrency), owners,
                                     strict=True):
            if not ok and seg not in failed:
                failed[seg] = result
        # Chunks of a segment without a version row are garbage; not so after a row write that timed out
        # (the row may have landed), so only these are discarded.
        self._discard_chunks(model, {seg: versions[seg] for seg in failed})
        rows_for = [item for item in prepared if item["segment"] not in failed]
        created = rules.now_ms()
        row_work = [(self._q["insert_version"], (
            model, item["segment"], versions[item["segment"]], item["arch"], item["feature_names"], item["classes"],
            item["metadata"], item["metrics"], item["stats"], item["size"], len(item["chunks"]), self.chunk_size,
            item["checksum"], created, author, COMPLETE)) for item in rows_for]
        for (ok, result), item in zip(self._concurrent(row_work, progress, "versions"), rows_for, strict=True):
            if not ok:
                failed[item["segment"]] = result
        if failed:
            first_seg, first_exc = next(iter(failed.items()))
            error = self._error(first_exc, f"publish {rules.where(model, first_seg, versions[first_seg])}")
            kind = StoreUnavailable if isinstance(error, StoreUnavailable) else StoreError
            raise kind(f"{error}; {len(failed)} of {len(prepared)} segments not published"
                       + (", nothing activated" if activate else "")) from first_exc
        if activate:
            self._release(model, versions, actor=author, reason=reason, progress=progress)
        return versions

    def _prepare_item(self, model: str, item: PublishItem) -> dict[str, Any]:
        """Validate one (segment, weights, metrics, stats) and encode it; nothing is written here."""
        try:
            segment, weights, metrics, stats = item
        except (TypeError, ValueError):
            raise ConfigError(f"publish {model}: items are (segment, weights, metrics, stats); got {item!r}") from None
        rules.check_segment(segment)
        where = rules.where(model, segment)
        if not isinstance(weights, ModelWeights):
            raise InvalidWeights(f"publish {where}: weights must be ModelWeights; got {type(weights).__name__}")
        try:
            build(weights)
            data = weights.to_bytes()
        except ScorerError as exc:
            raise InvalidWeights(f"publish {where}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - whatever breaks a model build makes the weights invalid
            raise InvalidWeights(f"publish {where}: weights do not build a model ({type(exc).__name__}: {exc})") \
                from exc
        classes = None if weights.classes is None else orjson.dumps(
            list(weights.classes), option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return {
            "segment": segment, "arch": weights.arch, "feature_names": list(weights.feature_names),
            "classes": classes, "metadata": rules.to_json(dict(weights.metadata), f"{where} metadata"),
            "metrics": rules.to_json(metrics, f"{where} metrics"), "stats": rules.to_json(stats, f"{where} stats"),
            "size": len(data), "checksum": rules.sha256_hex(data), "chunks": rules.split_chunks(data, self.chunk_size),
        }

    def _claim_versions(self, model: str, segments: list[str], progress: Progress | None) -> dict[str, int]:
        """Claim the next version number of every segment, concurrently, with LWTs; races just move up."""
        owner = uuid.uuid4()
        # Start above the newest claim (and the newest version row, for versions written without a claim).
        slices = [segments[start:start + IN_GROUP] for start in range(0, len(segments), IN_GROUP)]
        names = ("newest_claims_in", "newest_versions_in")
        reads = self._concurrent([(self._q[name], (model, part)) for part in slices for name in names])
        newest = dict.fromkeys(segments, 0)
        for result in self._all_ok(reads, [f"{part[0]}.." for part in slices for _ in names],
                                   f"read newest versions of {model}/"):
            for row in self._rows(result, f"read newest versions of {model}"):
                newest[row.segment] = max(newest[row.segment], row.version)
        pending = {seg: newest[seg] + 1 for seg in segments}
        won: dict[str, int] = {}
        for round_no in range(MAX_CLAIM_ROUNDS):
            attempt = list(pending.items())
            now = rules.now_ms()
            results = self._concurrent([(self._q["claim"], (model, seg, version, owner, now))
                                        for seg, version in attempt])
            unknown = []
            for (seg, version), (ok, result) in zip(attempt, results, strict=True):
                if ok and result.was_applied:
                    won[seg] = version
                    del pending[seg]
                elif ok:
                    pending[seg] = version + 1  # someone else owns that number
                elif lwt_outcome_unknown(result):
                    unknown.append((seg, version))
                elif self.settings.cassandra_claim_fallback and replicas_unavailable(result):
                    won[seg] = self._claim_without_paxos(model, seg, version, owner)  # see store/claims.py
                    del pending[seg]
                else:
                    raise self._error(result, f"claim {rules.where(model, seg, version)}") from result
            for seg, version in unknown:
                try:
                    holder = self._claim_holder(model, seg, version)
                except StoreUnavailable as exc:
                    if not (self.settings.cassandra_claim_fallback and replicas_unavailable(exc.__cause__)):
                        raise
                    # Settling needs Paxos too. A round that reached one of two replicas chose nothing yet; if a
                    # later round completes it, it writes this very claim (same number, same owner).
                    won[seg] = self._claim_without_paxos(model, seg, version, owner)
                    del pending[seg]
                    continue
                if holder == owner:
                    won[seg] = version
                    del pending[seg]
                elif holder is not None:
                    pending[seg] = version + 1
            if progress:
                progress("claim", len(won), len(segments))
            if not pending:
                return won
            time.sleep(random.uniform(0, min(0.05, 0.002 * (round_no + 1))))  # noqa: S311 - jitter, not secrets
        raise StoreError(f"publish {model}: no version number claimed for {sorted(pending)[:5]} after "
                         f"{MAX_CLAIM_ROUNDS} rounds of contention")

    def _claim_holder(self, model: str, segment: str, version: int) -> uuid.UUID | None:
        """Settle a claim whose LWT timed out: a LOCAL_SERIAL read finishes any in-flight Paxos round."""
        what = f"settle the claim of {rules.where(model, segment, version)} (its LWT timed out)"
        for attempt in range(3):
            try:
                row = self._execute(self._q["claim_owner"], (model, segment, version), what,
                                    consistency=ConsistencyLevel.name_to_value[
                                        self.settings.cassandra_serial_consistency]).one()
                return row.owner if row is not None else None
            except StoreUnavailable:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None  # pragma: no cover - the loop returns or raises

    def _claim_without_paxos(self, model: str, segment: str, version: int, owner: uuid.UUID) -> int:
        """cassandra_claim_fallback: Paxos has no quorum (RF 2, a node down); claim with a plain write."""
        try:
            if self._plain_claims is None:
                self._plain_claims = PlainClaims(self._session, self.settings.keyspace)
            return self._plain_claims.claim(model, segment, version, owner, rules.now_ms)
        except Exception as exc:  # noqa: BLE001 - mapped like every driver failure
            raise self._error(exc, f"claim {rules.where(model, segment, version)} without Paxos") from exc

    def _discard_chunks(self, model: str, versions: dict[str, int]) -> None:
        """Best effort after a failed publish; prune removes what this cannot."""
        work = [(self._q["delete_chunks"], (model, seg, version)) for seg, version in versions.items()]
        for (ok, result), (seg, version) in zip(self._concurrent(work), versions.items(), strict=True):
            if not ok:
                log.warning("could not discard chunks of %s: %s", rules.where(model, seg, version), result)

    # ------------------------------------------------------------------ pointers

    def _require_version(self, model: str, segment: str, version: int, action: str) -> VersionInfo:
        info = self.version_info(model, segment, version)
        if info is not None:
            return info
        # Only on the error path: say whether the model, the segment or just that version is unknown.
        if self._execute(self._q["any_segment"], (model,), f"look up model {model}").one() is None \
                and not self.active(model):
            raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: unknown model {model!r}")
        newest = self._execute(self._q["newest_version"], (model, segment),
                               f"look up {rules.where(model, segment)}").one()
        if newest is None:
            raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: segment {segment!r} of {model} "
                           f"has no versions")
        raise NotFound(f"cannot {action} {rules.where(model, segment, version)}: no such complete version "
                       f"(newest is {newest.version})")

    def _pointer(self, model: str, segment: str) -> ActiveModel | None:
        return self.active(model, segment).get(segment)

    def _change(self, entry: Activation, pointer_update: tuple[str, tuple[Any, ...]]) -> Activation:
        """Write a pointer update and its log entry in one logged batch: both land or neither."""
        name, params = pointer_update
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._q[name], params)
        batch.add(self._q["log_activation"], self._log_params(entry, uuid_from_time(entry.at.timestamp())))
        what = f"{entry.action} {rules.where(entry.model, entry.segment, entry.to_version)}"
        try:
            self._session.execute(batch)
        except Exception as exc:  # noqa: BLE001 - mapped below
            if not (self.settings.cassandra_downgrade and batch_not_applied(exc)):
                raise self._error(exc, what) from exc
            # A logged batch needs its batchlog on a second live node; with two nodes and one down there is
            # none, and the batch failed before writing anything. Unlogged, both rows still go to the live
            # replica; only a coordinator crash between them could split them (cassandra_downgrade).
            log.warning("%s: logged batch refused (%s); writing it unlogged (cassandra_downgrade)", what,
                        type(exc).__name__)
            batch.batch_type = BatchType.UNLOGGED
            self._execute(batch, None, what)
        return entry

    @staticmethod
    def _log_params(entry: Activation, entry_id: uuid.UUID) -> tuple[Any, ...]:
        return (entry.model, entry.segment, entry.at, entry_id, entry.actor, entry.action, entry.from_version,
                entry.to_version, entry.canary_version, entry.canary_fraction, entry.reason, entry.release_id)

    def activate(self, model: str, segment: str, version: int, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        """Make a complete version the segment's primary (a canary of that same version is cleared)."""
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        actor, reason = rules.who_and_why(actor, reason)
        self._require_version(model, segment, version, "activate")
        return self._set_primary(model, segment, version, "activate", actor, reason)

    def _set_primary(self, model: str, segment: str, version: int, action: str, actor: str,
                     reason: str | None) -> Activation:
        current = self._pointer(model, segment)
        clear = current is None or current.canary_version in (None, version)
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, action, current.version if current else None, version,
                           None if clear else current.canary_version, None if clear else current.canary_fraction,
                           reason)
        name = "set_primary_clear_canary" if clear else "set_primary"
        return self._change(entry, (name, (version, at, actor, reason, model, segment)))

    def rollback(self, model: str, segment: str, *, actor: str | None = None,
                 reason: str | None = None) -> Activation:
        """Return the segment to the version it had before its last activation (rollbacks stack)."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        target = rules.rollback_target(self._log(model, segment))
        if target is None:
            raise NotFound(f"cannot roll back {rules.where(model, segment)}: no activation to undo in its log")
        if target.from_version is None:
            raise StoreError(f"cannot roll back {rules.where(model, segment)}: version {target.to_version} was its "
                             f"first activation ({target.at:%Y-%m-%d %H:%M:%S} UTC), there is nothing earlier")
        self._require_version(model, segment, target.from_version, "roll back to")
        return self._set_primary(model, segment, target.from_version, "rollback", actor, reason)

    def canary(self, model: str, segment: str, version: int, fraction: float, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        """Serve ``version`` to a ``fraction`` (0 < f < 1) of the segment's traffic beside the primary."""
        rules.check_model(model)
        rules.check_segment(segment)
        rules.check_version(version)
        fraction = rules.check_fraction(fraction)
        actor, reason = rules.who_and_why(actor, reason)
        self._require_version(model, segment, version, "canary")
        current = self._pointer(model, segment)
        if current is None or current.version is None:
            raise StoreError(f"cannot canary {rules.where(model, segment, version)}: the segment has no active version "
                             f"to run beside; activate one first")
        if current.version == version:
            raise ConfigError(f"cannot canary {rules.where(model, segment, version)}: it is already the active version")
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, "canary", current.version, current.version, version, fraction,
                           reason)
        return self._change(entry, ("set_canary", (version, fraction, at, actor, reason, model, segment)))

    def promote(self, model: str, segment: str, *, actor: str | None = None,
                reason: str | None = None) -> Activation:
        """Make the canary the primary version and clear the canary."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if current is None or current.canary_version is None:
            raise StoreError(f"cannot promote {rules.where(model, segment)}: it has no canary")
        self._require_version(model, segment, current.canary_version, "promote")
        return self._set_primary(model, segment, current.canary_version, "promote", actor, reason)

    def retire_canary(self, model: str, segment: str, *, actor: str | None = None,
                      reason: str | None = None) -> Activation:
        """End the canary without promoting it: the primary serves all traffic again (logged as ``retire``)."""
        rules.check_model(model)
        rules.check_segment(segment)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if current is None or current.canary_version is None:
            raise StoreError(f"cannot retire the canary of {rules.where(model, segment)}: it has no canary")
        at = rules.now_ms()
        entry = Activation(model, segment, at, actor, "retire", current.version, current.version,
                           current.canary_version, current.canary_fraction, reason)
        return self._change(entry, ("clear_canary", (at, actor, reason, model, segment)))

    def shadow(self, model: str, segment: str, version: int | None, *, actor: str | None = None,
               reason: str | None = None) -> Activation:
        """Score ``version`` on all of the segment's events beside the primary, outputs to the shadow topic only;
        ``None`` clears the shadow.

        Logged as action ``shadow`` with the shadow version in ``canary_version`` (None when cleared) and no
        fraction: a shadow takes no traffic, it only watches it.
        """
        rules.check_model(model)
        rules.check_segment(segment)
        if version is not None:
            rules.check_version(version)
        actor, reason = rules.who_and_why(actor, reason)
        current = self._pointer(model, segment)
        if version is not None:
            self._require_version(model, segment, version, "shadow")
            if current is None or current.version is None:
                raise StoreError(f"cannot shadow {rules.where(model, segment, version)}: the segment has no active "
                                 f"version to run beside; activate one first")
            if current.version == version:
                raise ConfigError(f"cannot shadow {rules.where(model, segment, version)}: it is already the active "
                                  "version")
        elif current is None or current.shadow_version is None:
            raise StoreError(f"cannot clear the shadow of {rules.where(model, segment)}: it has no shadow")
        at = rules.now_ms()
        live = current.version if current is not None else None
        entry = Activation(model, segment, at, actor, "shadow", live, live, version, None, reason)
        return self._change(entry, ("set_shadow", (version, at, actor, reason, model, segment)))

    def release(self, model: str, mapping: dict[str, int], *, actor: str | None = None,
                reason: str | None = None) -> str:
        """Switch many segments of one model together (one single-partition batch); return the release id."""
        rules.check_model(model)
        if not isinstance(mapping, dict) or not mapping:
            raise ConfigError(f"release {model}: give at least one segment -> version")
        for segment, version in mapping.items():
            rules.check_segment(segment)
            rules.check_version(version, f"version of segment {segment!r}")
        actor, reason = rules.who_and_why(actor, reason)
        groups = _groups([(model, seg, v) for seg, v in mapping.items()], lambda key: 1, limit=None)
        results = self._all_ok(self._concurrent([(self._q["versions_in"], (model, segs, version))
                                                 for (_, version), segs in groups]),
                               [f"{segs[0]} version {version}" for (_, version), segs in groups],
                               f"check release of {model}/")
        complete = {(row.segment, row.version) for result in results
                    for row in self._rows(result, f"check release of {model}") if row.status == COMPLETE}
        missing = [f"{seg} v{v}" for seg, v in mapping.items() if (seg, v) not in complete]
        items = list(mapping.items())
        if missing:
            raise NotFound(f"release {model}: {len(missing)} of {len(items)} versions do not exist or are not "
                           f"complete: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return self._release(model, dict(mapping), actor=actor, reason=reason)

    def latest(self, model: str) -> dict[str, int]:
        """Every segment's newest complete version (for ``release --latest``)."""
        rules.check_model(model)
        segments = self._segments(model)
        results = self._all_ok(self._concurrent([(self._q["version_numbers"], (model, seg)) for seg in segments]),
                               segments, f"find newest versions of {model}/")
        newest: dict[str, int] = {}
        for seg, result in zip(segments, results, strict=True):
            for row in self._rows(result, f"find newest version of {rules.where(model, seg)}"):
                if row.status == COMPLETE:
                    newest[seg] = row.version
                    break
        return newest

    def _release(self, model: str, mapping: dict[str, int], *, actor: str | None, reason: str | None,
                 progress: Progress | None = None) -> str:
        actor = actor or default_actor()
        current = self.active(model)
        release_id = str(uuid.uuid4())
        at = rules.now_ms()
        # Same partition for every row: Cassandra applies the whole batch atomically and in isolation.
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        entries = []
        for segment, version in mapping.items():
            pointer = current.get(segment)
            clear = pointer is None or pointer.canary_version in (None, version)
            name = "set_primary_clear_canary" if clear else "set_primary"
            batch.add(self._q[name], (version, at, actor, reason, model, segment))
            entries.append(Activation(
                model, segment, at, actor, "release", pointer.version if pointer else None, version,
                None if clear else pointer.canary_version, None if clear else pointer.canary_fraction,
                reason, release_id))
        self._execute(batch, None, f"release {release_id} of {model} ({len(mapping)} segments)")
        work = [(self._q["log_activation"], self._log_params(entry, uuid_from_time(at.timestamp())))
                for entry in entries]
        failures = [result for ok, result in self._concurrent(work, progress, "activate") if not ok]
        if failures:
            error = self._error(failures[0], f"log release {release_id} of {model}")
            raise StoreError(f"release {release_id} of {model} is live, but {len(failures)} of its {len(work)} log "
                             f"entries were not written: {error}") from failures[0]
        return release_id

    # ------------------------------------------------------------------ prune

    def prune(self, model: str, segment: str | None = None, *, keep: int) -> list[tuple[str, int]]:
        """Delete versions (row, then chunks) beyond the newest ``keep`` per segment.

        Never deleted: the active, canary and shadow versions and the version a rollback would return to.
        Also removes the chunks of publishes that crashed before their version row (older than an hour).
        """
        rules.check_model(model)
        rules.prune_plan([], (), keep)  # validates keep before anything is read
        segments = [rules.check_segment(segment)] if segment is not None else self._segments(model)
        pointers = self.active(model)
        names = ("version_numbers", "claims", "activation_log")
        reads = self._concurrent([(self._q[name], (model, seg)) for seg in segments for name in names])
        results = self._all_ok(reads, [seg for seg in segments for _ in names], f"read versions of {model}/")
        doomed: list[tuple[str, int]] = []
        suspects: list[tuple[str, int]] = []
        horizon = rules.now_ms() - ORPHAN_GRACE
        for index, seg in enumerate(segments):
            versions_rs, claims_rs, log_rs = results[3 * index:3 * index + 3]
            complete = [row.version for row in self._rows(versions_rs, f"read {rules.where(model, seg)}")
                        if row.status == COMPLETE]
            pointer = pointers.get(seg)
            protected = [pointer.version, pointer.canary_version, pointer.shadow_version] if pointer else []
            log_what = f"read activation log of {rules.where(model, seg)}"
            target = rules.rollback_target(self._activation(row) for row in self._rows(log_rs, log_what))
            if target is not None:
                protected.append(target.from_version)
            plan = rules.prune_plan(complete, protected, keep)
            doomed.extend((seg, version) for version in plan)
            kept = [version for version in complete if version not in plan]
            floor = min(kept) if kept else 0
            for row in self._rows(claims_rs, f"read claims of {rules.where(model, seg)}"):
                claimed_at = _aware(row.claimed_at)
                if (row.version > floor and row.version not in complete and claimed_at is not None
                        and claimed_at < horizon):
                    suspects.append((seg, row.version))
        probes = self._all_ok(self._concurrent([(self._q["any_chunk"], (model, seg, v)) for seg, v in suspects]),
                              [f"{seg} version {v}" for seg, v in suspects], f"look for orphan chunks of {model}/")
        orphans = [key for key, result in zip(suspects, probes, strict=True) if result.one() is not None]
        # Version rows go first, so no reader trusts a version whose chunks are about to disappear.
        self._all_ok(self._concurrent([(self._q["delete_version"], (model, seg, v)) for seg, v in doomed]),
                     [f"{seg} version {v}" for seg, v in doomed], f"prune {model}/")
        gone = doomed + orphans
        self._all_ok(self._concurrent([(self._q["delete_chunks"], (model, seg, v)) for seg, v in gone]),
                     [f"{seg} version {v}" for seg, v in gone], f"prune chunks of {model}/")
        return sorted(gone)

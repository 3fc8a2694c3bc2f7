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
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from cassandra import (
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
from cassandra.query import PreparedStatement

from scorer.backoff import backoff
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
from scorer.models import ModelWeights

from . import rules
from .base import ActiveModel, Progress, VersionInfo, active_version
from .claims import PlainClaims
from .connection import connect
from .cql import COMPLETE, PAGE_BYTES, READ_BYTES_IN_FLIGHT, STATEMENTS, aware, in_groups
from .outside import OutsideChanges
from .pointers import Pointers
from .publishing import Publishing

log = logging.getLogger(__name__)

_UNREACHABLE = (NoHostAvailable, OperationTimedOut, Unavailable, ReadTimeout, WriteTimeout, ConnectionException)


def _busy(exc: BaseException) -> bool:
    """True when the driver did not send the request because its connection's write buffer was full."""
    if isinstance(exc, ConnectionBusy):
        return True
    return isinstance(exc, NoHostAvailable) and bool(exc.errors) and all(
        isinstance(err, ConnectionBusy) for err in exc.errors.values())


class CassandraModelStore(Publishing, Pointers, OutsideChanges):
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
        self._outside_seen: dict[tuple[str, str], tuple[int, Any]] = {}
        self._pointer_rows: dict[str, dict[str, tuple[tuple, ActiveModel]]] = {}
        """Per model, the last read of each pointer row: (values and write times, its ActiveModel)."""
        """Per segment, the last outside-change candidate looked at: (its write time, when it was made or None)."""
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
            except Exception as exc:  # mapped to one readable error
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
        except Exception as exc:  # every driver failure is mapped, never swallowed
            raise self._error(exc, what) from exc

    def _rows(self, result: ResultSet, what: str) -> Iterator[Any]:
        """Iterate every page; a failure fetching a later page is mapped like any other."""
        try:
            yield from result
        except Exception as exc:
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
            time.sleep(backoff(attempt + 1, 0.02, 1.0))
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
        except Exception as exc:
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
        return self._pointers_of(model, self._rows(result, f"read active versions of {model}"), segment is None)

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
            checksum=row.checksum, created_at=aware(row.created_at), author=row.author,
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
            version = active_version(self, model, segment)
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
        groups = in_groups(wanted, lambda key: 1, limit=None)
        results = self._concurrent([(self._q["heads_in"], (model, segs, version))
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
        groups = in_groups(list(rows), lambda key: rows[key].size_bytes, limit=PAGE_BYTES)
        work, largest = [], 1
        for (model, version), segs in groups:
            bound = self._q["chunks_in"].bind((model, segs, version))
            members = [rows[(model, seg, version)] for seg in segs]
            size = sum(row.size_bytes for row in members)
            largest = max(largest, min(size, PAGE_BYTES))
            if size <= PAGE_BYTES:
                bound.fetch_size = sum(row.n_chunks for row in members) + 1  # one page
            else:  # one large version: pages of about PAGE_BYTES
                bound.fetch_size = max(1, PAGE_BYTES // max(row.chunk_size or self.chunk_size for row in members))
            work.append((bound, None))
        concurrency = max(1, min(self.concurrency, READ_BYTES_IN_FLIGHT // largest))
        for ((model, version), segs), (ok, result) in zip(groups, self._concurrent(work, concurrency=concurrency),
                                                          strict=True):
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

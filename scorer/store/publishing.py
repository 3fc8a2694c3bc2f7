"""Publishing into Cassandra: claim version numbers (LWT), write chunks, then the complete version row.

A mixin of :class:`scorer.store.cassandra.CassandraModelStore`, which provides the session, the prepared
statements and the request plumbing (``_execute``, ``_concurrent``, ``_all_ok``, ``_rows``, ``_error``).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from scorer.backoff import backoff
from scorer.errors import ConfigError, InvalidWeights, ScorerError, StoreError, StoreUnavailable
from scorer.models import ModelWeights, build

from . import rules
from .base import Progress, PublishItem, default_actor
from .claims import PlainClaims, lwt_outcome_unknown, replicas_unavailable
from .cql import BYTES_IN_FLIGHT, COMPLETE, IN_GROUP, MAX_CLAIM_ROUNDS

log = logging.getLogger("scorer.store.cassandra")


class Publishing:
    """``publish`` and ``publish_many`` of the Cassandra store."""


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
        except Exception as exc:  # whatever breaks a model build makes the weights invalid
            raise InvalidWeights(f"publish {where}: weights do not build a model ({type(exc).__name__}: {exc})") \
                from exc
        if weights.arch == "ensemble":
            from scorer.ensemble import check_references  # its members are read from this store

            check_references(self, model, segment, weights)
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
        for attempt in range(5):
            try:
                row = self._execute(self._q["claim_owner"], (model, segment, version), what,
                                    consistency=ConsistencyLevel.name_to_value[
                                        self.settings.cassandra_serial_consistency]).one()
                return row.owner if row is not None else None
            except StoreError as exc:
                # A serial read is a Paxos round of its own: under contention it too can time out or end
                # "CAS operation result is unknown"; reading again settles it.
                retry = isinstance(exc, StoreUnavailable) or (exc.__cause__ is not None
                                                              and lwt_outcome_unknown(exc.__cause__))
                if attempt == 4 or not retry:
                    raise
                time.sleep(backoff(attempt + 1, 0.2, 2.0))
        return None  # pragma: no cover - the loop returns or raises

    def _claim_without_paxos(self, model: str, segment: str, version: int, owner: uuid.UUID) -> int:
        """cassandra_claim_fallback: Paxos has no quorum (RF 2, a node down); claim with a plain write."""
        try:
            if self._plain_claims is None:
                self._plain_claims = PlainClaims(self._session, self.settings.keyspace)
            return self._plain_claims.claim(model, segment, version, owner, rules.now_ms)
        except Exception as exc:  # mapped like every driver failure
            raise self._error(exc, f"claim {rules.where(model, segment, version)} without Paxos") from exc

    def _discard_chunks(self, model: str, versions: dict[str, int]) -> None:
        """Best effort after a failed publish; prune removes what this cannot."""
        work = [(self._q["delete_chunks"], (model, seg, version)) for seg, version in versions.items()]
        for (ok, result), (seg, version) in zip(self._concurrent(work), versions.items(), strict=True):
            if not ok:
                log.warning("could not discard chunks of %s: %s", rules.where(model, seg, version), result)


"""What the Cassandra store's parts share: every DML statement by name, the store's constants, and pure helpers.

``{ks}`` in a statement is the validated keyspace, the only interpolation; every value is a bind marker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

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
READ_BYTES_IN_FLIGHT = 32 * 1024 * 1024
"""Chunk reads in flight at once, in bytes: 64 pages of 4 MB (a preload of large forests) exhausted the devstack
Cassandra's 256 MB of direct memory and killed it; small models still read at full concurrency."""

STATEMENTS: dict[str, str] = {
    "active_model": "SELECT segment, version, canary_version, canary_fraction, shadow_version, updated_at, "
                    "WRITETIME(version) AS w_version, WRITETIME(canary_version) AS w_canary, "
                    "WRITETIME(canary_fraction) AS w_fraction, WRITETIME(shadow_version) AS w_shadow, "
                    "WRITETIME(updated_at) AS w_updated "
                    "FROM {ks}.active_models WHERE model = ?",
    "active_segment": "SELECT segment, version, canary_version, canary_fraction, shadow_version, updated_at, "
                    "WRITETIME(version) AS w_version, WRITETIME(canary_version) AS w_canary, "
                    "WRITETIME(canary_fraction) AS w_fraction, WRITETIME(shadow_version) AS w_shadow, "
                    "WRITETIME(updated_at) AS w_updated "
                      "FROM {ks}.active_models WHERE model = ? AND segment = ?",
    "models": "SELECT DISTINCT model FROM {ks}.active_models",
    "set_primary": "UPDATE {ks}.active_models USING TIMESTAMP ? SET version = ?, updated_at = ?, updated_by = ?, "
                   "reason = ? WHERE model = ? AND segment = ?",
    "set_primary_clear_canary": "UPDATE {ks}.active_models USING TIMESTAMP ? SET version = ?, canary_version = null, "
                                "canary_fraction = null, updated_at = ?, updated_by = ?, reason = ? "
                                "WHERE model = ? AND segment = ?",
    "set_canary": "UPDATE {ks}.active_models USING TIMESTAMP ? SET canary_version = ?, canary_fraction = ?, "
                  "updated_at = ?, updated_by = ?, reason = ? WHERE model = ? AND segment = ?",
    "set_shadow": "UPDATE {ks}.active_models USING TIMESTAMP ? SET shadow_version = ?, updated_at = ?, "
                  "updated_by = ?, reason = ? WHERE model = ? AND segment = ?",
    "clear_canary": "UPDATE {ks}.active_models USING TIMESTAMP ? SET canary_version = null, canary_fraction = null, "
                    "updated_at = ?, updated_by = ?, reason = ? WHERE model = ? AND segment = ?",
    "log_activation": "INSERT INTO {ks}.activations (model, segment, at, id, actor, action, from_version, "
                      "to_version, canary_version, canary_fraction, reason, release_id) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "activations": "SELECT model, segment, at, actor, action, from_version, to_version, canary_version, "
                   "canary_fraction, reason, release_id FROM {ks}.activations WHERE model = ? AND segment = ? "
                   "LIMIT ?",
    "activation_log_upto": "SELECT model, segment, at, actor, action, from_version, to_version, canary_version, "
                           "canary_fraction, reason, release_id FROM {ks}.activations WHERE model = ? "
                           "AND segment = ? AND at <= ? LIMIT 1",
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
    "heads_in": "SELECT segment, status, n_chunks, size_bytes, chunk_size, checksum FROM {ks}.model_versions "
                "WHERE model = ? AND segment IN ? AND version = ?",  # load_many: what it checks, no JSON columns
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


def in_groups(keys: Sequence[tuple[str, str, int]], weight: Callable[[tuple[str, str, int]], int],
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


def aware(value: datetime | None) -> datetime | None:
    # The driver returns naive UTC datetimes for timestamp columns.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)

"""The model store: versions, chunked weights and live pointers of per-segment models, in Cassandra."""

from scorer.store.base import Activation, ActiveModel, ModelStore, VersionInfo, default_actor
from scorer.store.cassandra import CassandraModelStore

__all__ = ["Activation", "ActiveModel", "CassandraModelStore", "ModelStore", "VersionInfo", "default_actor"]

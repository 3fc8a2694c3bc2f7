"""The model store: versions, chunked weights and live pointers of per-segment models (Cassandra, or memory)."""

from scorer.store.base import Activation, ActiveModel, ModelStore, VersionInfo, default_actor
from scorer.store.cassandra import CassandraModelStore
from scorer.store.memory import MemoryModelStore

__all__ = ["Activation", "ActiveModel", "CassandraModelStore", "MemoryModelStore", "ModelStore", "VersionInfo",
           "default_actor"]

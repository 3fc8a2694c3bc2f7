"""scorer: score live event streams with per-segment models whose weights live in Cassandra."""

__version__ = "0.1.0"

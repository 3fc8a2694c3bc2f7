"""Exporter modules, one per architecture family; importing each registers its exporters."""

# One import line per exporter module.
from trainers.exporters import linear  # noqa: F401

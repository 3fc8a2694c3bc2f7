"""Exporter modules, one per architecture family; importing each registers its exporters."""

# Add one import line per exporter module here.

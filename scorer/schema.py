"""Apply schema/*.cql in order, idempotently, and record what was applied."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cassandra.cluster import Session

from scorer.config import Settings

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


@dataclass(frozen=True)
class SchemaFile:
    name: str
    statements: tuple[str, ...]
    checksum: str


def _cql_map(mapping: dict[str, str | int]) -> str:
    # Rendered from validated settings only (identifiers and integers); json gives CQL-compatible quoting
    # once double quotes become single ones.
    return json.dumps(mapping).replace('"', "'")


def load_files(settings: Settings, directory: Path | None = None) -> list[SchemaFile]:
    """Read numbered ``NNN_name.cql`` files in order, filling in the keyspace and replication."""
    directory = directory or SCHEMA_DIR
    files = []
    for path in sorted(directory.glob("[0-9][0-9][0-9]_*.cql")):
        text = path.read_text()
        rendered = text.replace("{keyspace}", settings.keyspace).replace(
            "{replication}", _cql_map(settings.replication_map())
        )
        statements = tuple(s.strip() for s in _split(rendered) if s.strip())
        files.append(SchemaFile(path.name, statements, hashlib.sha256(text.encode()).hexdigest()))
    return files


def _split(text: str) -> list[str]:
    """Split on ';' at line ends, dropping ``--`` comment lines (no CQL here has ';' inside a string)."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return "\n".join(lines).split(";")


def apply(session: Session, settings: Settings, directory: Path | None = None) -> list[str]:
    """Run every statement of every file (all are IF NOT EXISTS); return the names of the files applied."""
    applied = []
    for schema_file in load_files(settings, directory):
        for statement in schema_file.statements:
            session.execute(statement, timeout=60)
        applied.append(schema_file.name)
    record = session.prepare(
        f"INSERT INTO {settings.keyspace}.schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)"  # noqa: S608 - validated identifier
    )
    now = datetime.now(UTC)
    for schema_file in load_files(settings, directory):
        session.execute(record, (schema_file.name, schema_file.checksum, now))
    return applied

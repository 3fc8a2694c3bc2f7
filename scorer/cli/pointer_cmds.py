"""Pointer commands: activate, rollback, canary, promote, shadow, release (each a row update plus its log entry)."""

from __future__ import annotations

from pathlib import Path

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.cli.store_cmds import actor_reason, announce, change_pointer, describe_change, open_store, say
from scorer.errors import ConfigError


@main.command("activate")
@click.argument("model")
@click.argument("segment")
@click.argument("version", type=int)
@actor_reason
@pass_cli
def activate_cmd(cli: CliContext, model: str, segment: str, version: int, actor: str | None,
                 reason: str | None) -> None:
    """Make VERSION the live version of MODEL/SEGMENT."""
    entry = change_pointer(cli, lambda store: store.activate(model, segment, version, actor=actor, reason=reason))
    say(describe_change(entry))


@main.command("rollback")
@click.argument("model")
@click.argument("segment")
@actor_reason
@pass_cli
def rollback_cmd(cli: CliContext, model: str, segment: str, actor: str | None, reason: str | None) -> None:
    """Return MODEL/SEGMENT to the version it had before its last activation."""
    entry = change_pointer(cli, lambda store: store.rollback(model, segment, actor=actor, reason=reason))
    say(describe_change(entry))


@main.command("canary")
@click.argument("model")
@click.argument("segment")
@click.argument("version", type=int)
@click.option("--fraction", required=True, type=float, help="Share of the segment's traffic, strictly between 0 and 1.")
@actor_reason
@pass_cli
def canary_cmd(cli: CliContext, model: str, segment: str, version: int, fraction: float, actor: str | None,
               reason: str | None) -> None:
    """Serve VERSION to a fraction of MODEL/SEGMENT's traffic beside the live version."""
    from scorer.store import rules

    rules.check_fraction(fraction)  # refuse before connecting
    entry = change_pointer(cli, lambda store: store.canary(model, segment, version, fraction, actor=actor,
                                                           reason=reason))
    say(describe_change(entry))


@main.command("promote")
@click.argument("model")
@click.argument("segment")
@actor_reason
@pass_cli
def promote_cmd(cli: CliContext, model: str, segment: str, actor: str | None, reason: str | None) -> None:
    """Make MODEL/SEGMENT's canary the live version."""
    entry = change_pointer(cli, lambda store: store.promote(model, segment, actor=actor, reason=reason))
    say(describe_change(entry))


@main.command("shadow")
@click.argument("model")
@click.argument("segment")
@click.argument("version", type=int, required=False)
@click.option("--clear", is_flag=True, help="Stop shadow scoring for the segment.")
@actor_reason
@pass_cli
def shadow_cmd(cli: CliContext, model: str, segment: str, version: int | None, clear: bool, actor: str | None,
               reason: str | None) -> None:
    """Score every event of MODEL/SEGMENT with VERSION too, outputs to the shadow topic only (or --clear it)."""
    if clear == (version is not None):
        raise ConfigError("give either VERSION or --clear")
    entry = change_pointer(cli, lambda store: store.shadow(model, segment, None if clear else version, actor=actor,
                                                           reason=reason))
    say(describe_change(entry))


def _release_file(path: Path) -> dict[str, int]:
    from pydantic import StrictInt, TypeAdapter, ValidationError

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--versions {str(path)!r}: {exc.strerror or exc}") from None
    try:
        mapping = TypeAdapter(dict[str, StrictInt]).validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "top level"
        raise ConfigError(f"--versions {str(path)!r} must be a JSON object of segment -> version number; at "
                          f"{where}: {first['msg']}") from None
    if not mapping:
        raise ConfigError(f"--versions {str(path)!r} names no segments")
    return mapping


@main.command("release")
@click.argument("model")
@click.option("--versions", "versions_path", type=click.Path(dir_okay=False, path_type=Path),
              help='JSON file mapping segment to version, e.g. {"ORD": 3, "JFK": 5}.')
@click.option("--latest", is_flag=True, help="Every segment's newest version.")
@actor_reason
@pass_cli
def release_cmd(cli: CliContext, model: str, versions_path: Path | None, latest: bool, actor: str | None,
                reason: str | None) -> None:
    """Switch many segments of MODEL at once: workers see all of the release or none of it."""
    if latest == (versions_path is not None):
        raise ConfigError("give exactly one of --versions FILE.json or --latest")
    mapping = _release_file(versions_path) if versions_path is not None else None
    with open_store(cli) as store:
        if mapping is None:
            mapping = store.latest(model)
            if not mapping:
                raise ConfigError(f"model {model!r} has no published versions to release")
        before = store.active(model)
        release_id = store.release(model, mapping, actor=actor, reason=reason)
    announce(cli, model, None, "release", None)
    changed = sum(1 for seg, v in mapping.items() if before.get(seg) is None or before[seg].version != v)
    say(f"released {model}: {len(mapping)} segments ({changed} changed), release {release_id}")


# ------------------------------------------------------------------------------------------ listings

"""Model store commands: publish, activate, rollback, canary, promote, release, versions, show, export,
prune and activations. Thin: parse, call the store, print; every failure is one ``error:`` line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from scorer.cli.base import CliContext, main, pass_cli
from scorer.errors import ConfigError, InvalidWeights, NotFound
from scorer.store.base import active_version

if TYPE_CHECKING:
    from rich.console import Console

    from scorer.models import ModelWeights
    from scorer.store import Activation, CassandraModelStore, ModelStore, VersionInfo

_ACTOR_HELP = "Who makes the change, for the activation log [default: $USER@hostname]."
_REASON_HELP = "Why, for the activation log."


def actor_reason(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--reason", help=_REASON_HELP)(fn)
    return click.option("--actor", help=_ACTOR_HELP)(fn)


@contextmanager
def open_store(cli: CliContext) -> Iterator[CassandraModelStore]:
    """A connected store for one command (fails within the connect timeout, naming the hosts)."""
    from scorer.store import CassandraModelStore

    store = CassandraModelStore(cli.settings)
    try:
        yield store
    finally:
        store.close()


def change_pointer(cli: CliContext, change: Callable[[ModelStore], Activation]) -> Activation:
    """The one place where activate, rollback, canary and promote change a live pointer.

    The change is announced by a "model-changes" notice once ``change`` returned (the Activation says who
    switched which segment from which version to which), so workers swap now rather than at their next poll;
    the notice's producer connects while the pointer is written, and a failure to send only warns.
    """
    from scorer.kafka import notices

    with notices.announce(cli.settings) as notify:
        with open_store(cli) as store:
            entry = change(store)
        warning = notify(entry.model, entry.segment, entry.action,
                         entry.canary_version if entry.action == "canary" else entry.to_version)
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    return entry


def announce(cli: CliContext, model: str, segment: str | None, action: str, version: int | None) -> None:
    """A model-changes notice so workers swap now rather than at their next poll; a failure only warns."""
    from scorer.kafka.notices import try_publish_notice

    warning = try_publish_notice(cli.settings, model, segment, action, version)
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)


def _console(stderr: bool = False) -> Console:
    """A terminal keeps its width; piped output gets a wide one, so tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 200))
    return console


def say(text: str) -> None:
    """A plain line on stdout (no markup, no wrapping), for lines scripts parse."""
    click.echo(text)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def describe_change(entry: Activation) -> str:
    """One line saying what changed, e.g. ``activated delay/ORD version 3 (was 2)``."""
    where, was = f"{entry.model}/{entry.segment}", f"(was {_opt(entry.from_version)})"
    if entry.action == "canary":
        return (f"canary {where} version {entry.canary_version} on {entry.canary_fraction:.4g} of traffic beside "
                f"version {entry.to_version}")
    if entry.action == "rollback":
        return f"rolled back {where} to version {entry.to_version} {was}"
    if entry.action == "retire":
        return (f"retired canary version {entry.canary_version} of {where}; version {entry.to_version} serves all "
                f"traffic")
    if entry.action == "shadow":
        if entry.canary_version is None:
            return f"cleared the shadow of {where} (version {entry.to_version} serves)"
        return f"shadow {where} version {entry.canary_version} beside version {entry.to_version} (no traffic)"
    if entry.action == "promote":
        return f"promoted {where} canary version {entry.to_version} to live {was}"
    return f"activated {where} version {entry.to_version} {was}"


# ------------------------------------------------------------------------------------------ publish


def _read_weights(path: Path) -> ModelWeights:
    from scorer.errors import UnsupportedModel
    from scorer.models import ModelWeights

    if not path.is_file():
        raise ConfigError(f"--weights {str(path)!r} is not a readable file")
    try:
        if path.suffix.lower() in (".txt", ".json", ".ubj"):  # LightGBM / XGBoost model files
            from scorer.importers import read_model_file

            return read_model_file(path)
        return ModelWeights.load(path)
    except (InvalidWeights, UnsupportedModel):
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error line
        raise InvalidWeights(f"cannot read weights from {str(path)!r}: {type(exc).__name__}: {exc}") from None


def _sidecar(path: Path, weights: ModelWeights) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Path | None]:
    """Metrics and stats from ``scorer train --out``'s sidecar (``<stem>.json`` beside the .npz), if any."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None, None, None
    try:
        data = orjson.loads(sidecar.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"sidecar {str(sidecar)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or "checksum" not in data:
        return None, None, None  # some other JSON file that happens to share the name
    if data["checksum"] != weights.checksum():
        raise ConfigError(f"sidecar {str(sidecar)!r} describes other weights (checksum "
                          f"{str(data['checksum'])[:12]}..., weights {weights.checksum()[:12]}...); "
                          f"remove it or publish the matching .npz")
    metrics, stats = data.get("metrics"), data.get("stats")
    return (metrics if isinstance(metrics, dict) else None, stats if isinstance(stats, dict) else None, sidecar)


@main.command("publish")
@click.option("--model", required=True, help="Model name.")
@click.option("--segment", required=True, help="Segment the weights are for.")
@click.option("--weights", "weights_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights .npz (from `scorer train --out` or ModelWeights.save); a <stem>.json sidecar beside it "
                   "supplies metrics and stats.")
@click.option("--activate", is_flag=True, help="Make the new version live at once.")
@actor_reason
@pass_cli
def publish_cmd(cli: CliContext, model: str, segment: str, weights_path: Path, activate: bool, actor: str | None,
                reason: str | None) -> None:
    """Store new weights as the segment's next version (validated before anything is written)."""
    from scorer.models import build
    from scorer.store import rules

    rules.check_model(model)
    rules.check_segment(segment)
    weights = _read_weights(weights_path)
    built = build(weights)  # refuse invalid weights before connecting
    metrics, stats, sidecar = _sidecar(weights_path, weights)
    with open_store(cli) as store:
        version = store.publish(model, segment, weights, metrics=metrics, stats=stats, author=actor,
                                activate=activate, reason=reason)
    kind = f"{len(built.classes)}-class classifier" if built.classes is not None else "regressor"
    say(f"weights: {weights.arch} {kind}, {len(weights.feature_names)} features, sha256 {weights.checksum()[:16]}")
    if sidecar is not None:
        say(f"metrics and stats from {sidecar}")
    if activate:
        say(f"activated {model}/{segment} version {version}")
    say(f"published {model}/{segment} version {version}")


# ------------------------------------------------------------------------------------------ pointers


def _states(info: VersionInfo, active: dict[str, Any]) -> str:
    pointer = active.get(info.segment)
    if pointer is None:
        return ""
    marks = []
    if pointer.version == info.version:
        marks.append("active")
    if pointer.canary_version == info.version:
        marks.append(f"canary {pointer.canary_fraction:.4g}" if pointer.canary_fraction is not None else "canary")
    if pointer.shadow_version == info.version:
        marks.append("shadow")
    return ", ".join(marks)


def _headline_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    shown = []
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            shown.append(f"{key}={value:.4g}")
        if len(shown) == limit:
            break
    return " ".join(shown) or "-"


def _version_json(info: VersionInfo, state: str) -> dict[str, Any]:
    return {
        "model": info.model, "segment": info.segment, "version": info.version, "arch": info.arch,
        "feature_names": list(info.feature_names), "classes": None if info.classes is None else list(info.classes),
        "metadata": dict(info.metadata), "metrics": info.metrics, "stats": info.stats, "size_bytes": info.size_bytes,
        "n_chunks": info.n_chunks, "checksum": info.checksum,
        "created_at": info.created_at.isoformat() if info.created_at else None, "author": info.author,
        "active": "active" in state.split(", "), "canary": any(s.startswith("canary") for s in state.split(", ")),
    }


@main.command("versions")
@click.argument("model")
@click.argument("segment", required=False)
@click.option("--json", "as_json", is_flag=True, help="A JSON list (one object per version) instead of a table.")
@pass_cli
def versions_cmd(cli: CliContext, model: str, segment: str | None, as_json: bool) -> None:
    """List the complete versions of MODEL (or one SEGMENT), newest first."""
    from rich.markup import escape
    from rich.table import Table

    with open_store(cli) as store:
        infos = store.versions(model, segment)
        active = store.active(model, segment)
    if as_json:
        click.echo(orjson.dumps([_version_json(info, _states(info, active)) for info in infos],
                                option=orjson.OPT_INDENT_2).decode())
        return
    if not infos:
        raise NotFound(f"no versions of {model}" + (f"/{segment}" if segment else "") + " (nothing published)")
    table = Table(title=f"versions of {model}" + (f"/{segment}" if segment else ""), title_justify="left")
    for column in ("segment", "version", "state", "arch", "features", "size", "metrics", "created (UTC)", "author",
                   "sha256"):
        table.add_column(column, justify="right" if column in ("version", "features", "size") else "left",
                         overflow="fold")
    for info in infos:
        table.add_row(escape(info.segment), str(info.version), _states(info, active), info.arch,
                      str(len(info.feature_names)), _size(info.size_bytes), _headline_metrics(info.metrics),
                      _when(info.created_at), escape(info.author or "-"), info.checksum[:12])
    _console().print(table)


@main.command("export")
@click.argument("model")
@click.argument("segment")
@click.argument("version", type=int, required=False)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Destination .npz.")
@pass_cli
def export_cmd(cli: CliContext, model: str, segment: str, version: int | None, out_path: Path) -> None:
    """Write a version's weights (default: the live one) to an .npz, checksum verified."""
    with open_store(cli) as store:
        if version is None:
            try:
                version = active_version(store, model, segment)
            except NotFound as exc:
                raise NotFound(f"{exc}; give VERSION") from None
        weights = store.load(model, segment, version)
    try:
        weights.save(out_path)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(out_path)!r}: {exc.strerror or exc}") from None
    say(f"exported {model}/{segment} version {version} to {out_path} (sha256 {weights.checksum()[:16]})")


@main.command("prune")
@click.argument("model")
@click.argument("segment", required=False)
@click.option("--keep", required=True, type=click.IntRange(min=1), help="Newest versions to keep per segment.")
@pass_cli
def prune_cmd(cli: CliContext, model: str, segment: str | None, keep: int) -> None:
    """Delete old versions beyond the newest N; live versions, rollback targets, live ensembles' members stay."""
    from scorer.ensemble import live_references
    with open_store(cli) as store:
        needed = live_references(store, model)  # reported below; store.prune keeps them itself
        gone = store.prune(model, segment, keep=keep)
    for (seg, version), user in sorted((k, u) for k, u in needed.items() if segment in (None, k[0])):
        say(f"  {seg}: kept {version}, referenced by live ensemble {user}")
    by_segment: dict[str, list[int]] = {}
    for seg, version in gone:
        by_segment.setdefault(seg, []).append(version)
    for seg, versions in sorted(by_segment.items()):
        say(f"  {seg}: deleted {', '.join(map(str, sorted(versions, reverse=True)))}")
    say(f"pruned {len(gone)} versions of {model}" + (f"/{segment}" if segment else ""))


@main.command("activations")
@click.argument("model")
@click.argument("segment", required=False)
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True, help="Entries shown.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of a table.")
@pass_cli
def activations_cmd(cli: CliContext, model: str, segment: str | None, limit: int, as_json: bool) -> None:
    """The activation log of MODEL (or one SEGMENT), newest first: who switched what, when and why."""
    from rich.markup import escape
    from rich.table import Table

    with open_store(cli) as store:
        entries = store.activations(model, segment, limit=limit)
    if as_json:
        click.echo(orjson.dumps([{**asdict(entry), "at": entry.at.isoformat()} for entry in entries],
                                option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"activations of {model}" + (f"/{segment}" if segment else ""), title_justify="left")
    for column in ("at (UTC)", "segment", "action", "from", "to", "canary", "actor", "reason", "release"):
        table.add_column(column, justify="right" if column in ("from", "to") else "left", overflow="fold")
    for entry in entries:
        canary = "-" if entry.canary_version is None else (
            f"{entry.canary_version} ({entry.canary_fraction:.4g})" if entry.canary_fraction is not None
            else str(entry.canary_version))
        table.add_row(_when(entry.at), escape(entry.segment), entry.action, _opt(entry.from_version),
                      _opt(entry.to_version), canary, escape(entry.actor or "-"), escape(entry.reason or "-"),
                      (entry.release_id or "-")[:8])
    _console().print(table)
    if not entries:
        say(f"no activations of {model}" + (f"/{segment}" if segment else ""))

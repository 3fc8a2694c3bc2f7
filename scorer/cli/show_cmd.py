"""``scorer show``: one version described (the live one by default), as a table or as JSON."""

from __future__ import annotations

from typing import Any

import click
import orjson

from scorer.cli.base import CliContext, main, pass_cli
from scorer.cli.store_cmds import _console, _opt, _size, _states, _version_json, _when, open_store
from scorer.errors import NotFound
from scorer.models.categorical import describe_levels
from scorer.store.base import ActiveModel


@main.command("show")
@click.argument("model")
@click.argument("segment")
@click.argument("version", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (version, pointer, lineage, recent changes).")
@pass_cli
def show_cmd(cli: CliContext, model: str, segment: str, version: int | None, as_json: bool) -> None:
    """Describe one version (default: the live one, else the newest) and the segment's pointers."""
    from scorer.ensemble import members_of

    with open_store(cli) as store:
        pointer = store.active(model, segment).get(segment)
        note = ""
        if version is None:
            if pointer is not None and pointer.version is not None:
                version, note = pointer.version, " (active)"
            else:
                infos = store.versions(model, segment)
                if not infos:
                    raise NotFound(f"{model}/{segment} has no versions")
                version, note = infos[0].version, " (newest; none is active)"
        info = store.version_info(model, segment, version)
        history = store.activations(model, segment, limit=5)
        members = members_of(store, info)
    if info is None:
        raise NotFound(f"{model}/{segment} version {version} does not exist or is not complete")
    state = _states(info, {segment: pointer} if pointer else {})
    lineage = info.metadata.get("lineage")
    if as_json:
        out = {**_version_json(info, state), "state": state, "pointer": _pointer_json(pointer),
               "lineage": lineage, "members": members,
               "recent_changes": [{"at": a.at.isoformat(), "action": a.action, "actor": a.actor,
                                   "from_version": a.from_version, "to_version": a.to_version} for a in history]}
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, title=f"{model}/{segment} version {version}{note}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    metadata = {key: value for key, value in info.metadata.items() if key != "lineage"}
    rows = [
        ("state", state or "-"),
        ("live pointer", "-" if pointer is None else
         f"version {_opt(pointer.version)}, canary {_opt(pointer.canary_version)}"
         f"{f' ({pointer.canary_fraction:.4g})' if pointer.canary_fraction is not None else ''}, "
         f"shadow {_opt(pointer.shadow_version)}, updated {_when(pointer.updated_at)}"
         + (f", changed outside scorer {_when(pointer.outside_at)}" if pointer.outside_at else "")),
        ("arch", info.arch),
        ("features", f"{len(info.feature_names)}: {', '.join(info.feature_names[:20])}"
                     + (" ..." if len(info.feature_names) > 20 else "")),
        ("classes", "- (regressor)" if info.classes is None else ", ".join(map(str, info.classes))),
        *([("categorical", "\n".join(describe_levels(c) for c in info.metadata["categorical"]))]
          if isinstance(info.metadata.get("categorical"), list) else []),
        ("size", f"{_size(info.size_bytes)} in {info.n_chunks} chunk(s)"),
        ("sha256", info.checksum),
        ("created", f"{_when(info.created_at)} UTC by {info.author or '-'}"),
        ("lineage", _lineage_text(lineage)),
        ("metrics", orjson.dumps(info.metrics, option=orjson.OPT_SORT_KEYS).decode() if info.metrics else "-"),
        ("stats", f"{len(info.stats)} entries: {', '.join(list(info.stats)[:10])}" if info.stats else "-"),
        ("metadata", orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()[:600] if metadata else "-"),
        *([("combine", str(info.metadata.get("combine"))), ("members", "\n".join(members))] if members else []),
        ("recent changes", "; ".join(f"{_when(a.at)} {a.action} {a.from_version or 'none'}->{a.to_version}"
                                     for a in history) or "-"),
    ]
    for field, value in rows:
        table.add_row(field, escape(value))
    _console().print(table)


def _pointer_json(pointer: ActiveModel | None) -> dict[str, Any] | None:
    if pointer is None:
        return None
    return {"version": pointer.version, "canary_version": pointer.canary_version,
            "canary_fraction": pointer.canary_fraction, "shadow_version": pointer.shadow_version,
            "updated_at": pointer.updated_at.isoformat() if pointer.updated_at else None,
            "outside_at": pointer.outside_at.isoformat() if pointer.outside_at else None}


def _lineage_text(lineage: Any) -> str:
    """``12,000 rows, sha256 3f2a..., 2026-01-01T00:00:00Z .. 2026-03-31T23:00:00Z, scorer 0.1.0``."""
    if not isinstance(lineage, dict):
        return "- (not recorded: trained outside scorer train)"
    parts = [f"{lineage.get('rows', '?'):,} rows" if isinstance(lineage.get("rows"), int) else "? rows",
             f"sha256 {lineage.get('sha256', '?')}"]
    if lineage.get("time_from"):
        parts.append(f"{lineage['time_from']} .. {lineage.get('time_to')}")
    parts.append(f"scorer {lineage.get('scorer_version', '?')}")
    return ", ".join(parts)

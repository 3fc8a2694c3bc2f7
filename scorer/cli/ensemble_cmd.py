"""``scorer ensemble``: publish a version that combines published versions (see scorer.ensemble)."""

from __future__ import annotations

from pathlib import Path

import click

from scorer.cli.base import CliContext, main, pass_cli
from scorer.cli.store_cmds import actor_reason, announce, open_store, say
from scorer.errors import ConfigError
from scorer.models.ensemble import COMBINES


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--weights must be comma-separated numbers, one per member; got {text!r}") from None


@main.command("ensemble")
@click.argument("model")
@click.argument("segment")
@click.option("--member", "members", multiple=True, required=True, metavar="[MODEL/]SEGMENT:VERSION",
              help="A published version to combine (repeat, in order); the model defaults to MODEL.")
@click.option("--weights", "weights_text", metavar="W1,W2,...",
              help="One weight per member for mean, vote and soft-vote [default: equal]. Two members and weights "
                   "like 0.7,0.3 blend a segment's model with a global one.")
@click.option("--combine", type=click.Choice(COMBINES), default="mean", show_default=True,
              help="Weighted mean of probabilities/values, hard vote, soft vote, or a stored meta-model.")
@click.option("--meta", "meta_path", type=click.Path(dir_okay=False, path_type=Path),
              help="For --combine stack: the meta-model weights (.npz of a linear or logistic model over the "
                   "members' outputs: one column per regressor or binary classifier, k per k-class one).")
@click.option("--passthrough", is_flag=True, help="For --combine stack: the meta-model also reads the inputs.")
@click.option("--activate", is_flag=True, help="Make the new version live at once.")
@actor_reason
@pass_cli
def ensemble_cmd(cli: CliContext, model: str, segment: str, members: tuple[str, ...], weights_text: str | None,
                 combine: str, meta_path: Path | None, passthrough: bool, activate: bool, actor: str | None,
                 reason: str | None) -> None:
    """Publish an ensemble version of MODEL/SEGMENT over fixed member versions (checked before anything is
    written: members exist, share features, task and classes, weights match, no cycle)."""
    from scorer.ensemble import compose, parse_member
    from scorer.models import ModelWeights
    from scorer.store import rules

    rules.check_model(model)
    rules.check_segment(segment)
    keys = [parse_member(m, model) for m in members]
    weights = _weights(weights_text)
    if combine != "stack" and (meta_path is not None or passthrough):
        raise ConfigError("--meta and --passthrough are for --combine stack")
    meta = ModelWeights.load(meta_path) if meta_path is not None else None
    with open_store(cli) as store:
        version = compose(store, model, segment, keys, combine=combine, weights=weights, meta=meta,
                          passthrough=passthrough, activate=activate, author=actor, reason=reason)
    if activate:
        announce(cli, model, segment, "activate", version)
    say(f"members ({combine}): " + ", ".join(f"{m}/{s} version {v}" for m, s, v in keys))
    if activate:
        say(f"activated {model}/{segment} version {version}")
    say(f"published {model}/{segment} version {version}")

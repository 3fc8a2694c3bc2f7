"""A synthetic ride-cancellation stream: a dozen cities, each with its own ground-truth logistic model.

Everything is a pure function of the seed. Random draws come from independent generators per purpose
(city parameters, stream, training history, retraining data per city), and every feature is a per-city
transform of shared standard draws, so switching drift on changes exactly the drifted city's rows after
the drift point and nothing else (the tests check this).

What ``write_demo_data`` writes into its output directory (CSV, or Parquet with ``fmt="parquet"``):

- ``train.csv``: labelled history for every city, drawn from the pre-drift truth (trains v1);
- ``stream.csv``: the live events in time order, ids ``e-<n>``, with the label ``cancelled`` kept for the
  report (``scorer send`` only sends the columns it is told to);
- ``stream_part1.csv``, ``stream_part2.csv``, ...: the same rows cut at the ``split_at`` fractions (the demo
  streams part 1, swaps models while part 2 flows, then streams the rest);
- ``retrain_<city>.csv``: fresh labelled rows for the drifted city (post-drift truth) and for each extra
  ``retrain_cities`` entry (its unchanged truth), to train v2;
- ``demo.json``: the parameters, the drift point, the file names and the ground truth (the report reads it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scorer.errors import ConfigError

CITIES = ("ORD", "JFK", "LAX", "SFO", "SEA", "BOS", "ATL", "DFW", "DEN", "MIA", "PHX", "IAH")
FEATURES = ("wait_minutes", "distance_km", "surge", "hour", "rating")
ID_COL, TIME_COL, SEGMENT_COL, TARGET = "id", "ts", "city", "cancelled"
FORMATS = ("csv", "parquet")
META_FILE = "demo.json"

# The truth is linear in these standardised features, so a logistic model on the raw columns can learn it.
_CENTER = np.array([8.0, 8.0, 1.3, 11.5, 4.6])
_SCALE = np.array([4.0, 5.0, 0.3, 6.9, 0.25])
_STREAM_START = datetime(2024, 6, 1, tzinfo=UTC)
_HISTORY_DAYS = 28
_SIM_EVENTS_PER_SECOND = 20.0


@dataclass(frozen=True)
class CityModel:
    """One city's ground truth: how its features are distributed and how they drive cancellations."""

    city: str
    intercept: float
    coef: tuple[float, ...]
    """Weights on the standardised features, in FEATURES order."""
    wait_log_mean: float
    distance_log_mean: float
    surge_level: float
    share: float
    """Relative share of the stream's traffic."""

    def drifted(self) -> CityModel:
        """After the drift: long waits and surges now mean *fewer* cancellations, and both run higher.

        (Think of a new pre-booking product: its rides are booked far ahead at surge prices and rarely
        cancelled.) A model trained before the drift gets most of this city's decisions wrong.
        """
        wait, distance, surge, hour, rating = self.coef
        return replace(self, intercept=self.intercept + 0.2, coef=(-0.9 * wait, distance, -surge, hour, rating),
                       wait_log_mean=self.wait_log_mean + 0.2, surge_level=self.surge_level * 2.0)

    def truth_dict(self) -> dict[str, Any]:
        return {"intercept": round(self.intercept, 6),
                "coef": {name: round(value, 6) for name, value in zip(FEATURES, self.coef, strict=True)},
                "center": dict(zip(FEATURES, _CENTER.tolist(), strict=True)),
                "scale": dict(zip(FEATURES, _SCALE.tolist(), strict=True))}


@dataclass(frozen=True)
class DemoConfig:
    """What to generate. Invalid values raise ConfigError naming the field and the value received."""

    seed: int = 7
    cities: tuple[str, ...] = CITIES
    events: int = 48_000
    train_rows: int = 2_000
    """Training rows per city in train.csv."""
    drift_city: str | None = None
    drift_at: float = 0.25
    """Fraction of the stream after which the drift city's truth changes."""
    retrain_cities: tuple[str, ...] = ()
    """Cities (besides the drift city) that get a retrain_<city> file drawn from their unchanged truth."""
    retrain_rows: int = 2_000
    split_at: tuple[float, ...] = ()
    """Increasing fractions of the stream; when given, also write stream_part1..N cut at them."""
    null_rate: float = 0.02
    """Share of missing ``rating`` values (the trained pipelines impute them)."""
    fmt: str = "csv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cities", tuple(str(c) for c in self.cities))
        object.__setattr__(self, "retrain_cities", tuple(dict.fromkeys(str(c) for c in self.retrain_cities)))
        if not self.cities:
            raise ConfigError("cities must name at least one city")
        if len(set(self.cities)) != len(self.cities):
            raise ConfigError(f"cities must be unique; got {list(self.cities)}")
        for name in ("seed", "events", "train_rows", "retrain_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ConfigError(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'} integer; "
                                  f"got {value!r}")
        if self.drift_city is not None and self.drift_city not in self.cities:
            raise ConfigError(f"drift city {self.drift_city!r} is not one of the cities: {', '.join(self.cities)}")
        for city in self.retrain_cities:
            if city not in self.cities:
                raise ConfigError(f"retrain city {city!r} is not one of the cities: {', '.join(self.cities)}")
        if not 0.0 < self.drift_at < 1.0:
            raise ConfigError(f"drift_at must be a fraction strictly between 0 and 1; got {self.drift_at!r}")
        object.__setattr__(self, "split_at", tuple(float(f) for f in self.split_at))
        if any(not 0.0 < f < 1.0 for f in self.split_at) or list(self.split_at) != sorted(set(self.split_at)):
            raise ConfigError(f"split_at must be increasing fractions strictly between 0 and 1; "
                              f"got {list(self.split_at)}")
        if not 0.0 <= self.null_rate < 1.0:
            raise ConfigError(f"null_rate must be in [0, 1); got {self.null_rate!r}")
        if self.fmt not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {self.fmt!r}")

    @property
    def drift_index(self) -> int | None:
        """Index (0-based, = n in e-<n>) of the first stream event after the drift; None without drift."""
        return None if self.drift_city is None else int(self.drift_at * self.events)

    @property
    def split_indices(self) -> tuple[int, ...]:
        """Index of the first event of parts 2, 3, ..."""
        return tuple(int(f * self.events) for f in self.split_at)

    @property
    def retrain_targets(self) -> tuple[str, ...]:
        first = (self.drift_city,) if self.drift_city is not None else ()
        return tuple(dict.fromkeys((*first, *self.retrain_cities)))


# -- ground truth -------------------------------------------------------------------------------------
def city_models(seed: int, cities: Sequence[str] = CITIES) -> dict[str, CityModel]:
    """Each city's truth, drawn in city order from the seed."""
    rng = np.random.default_rng([seed, 0])
    models = {}
    for city in cities:
        coef = (rng.uniform(1.0, 1.8), rng.uniform(-0.9, 0.3), rng.uniform(0.6, 1.3), rng.uniform(-0.6, 0.6),
                rng.uniform(-0.9, -0.3))
        models[city] = CityModel(
            city=city, intercept=float(rng.uniform(-1.3, -0.5)), coef=tuple(float(c) for c in coef),
            wait_log_mean=float(np.log(rng.uniform(4.0, 10.0))),
            distance_log_mean=float(np.log(rng.uniform(3.0, 12.0))),
            surge_level=float(rng.uniform(0.1, 0.5)), share=float(rng.uniform(0.6, 1.4)))
    return models


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class _Draws:
    """Standard draws shared by every city; a city's features are a transform of them."""

    normal: np.ndarray      # (n, 3): wait, distance, surge
    hour: np.ndarray        # (n,) int
    rating: np.ndarray      # (n,) standard normal
    missing: np.ndarray     # (n,) uniform, rating is null below null_rate
    label: np.ndarray       # (n,) uniform, cancelled when below the probability

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Draws:
        return cls(normal=rng.standard_normal((n, 3)), hour=rng.integers(0, 24, n), rating=rng.standard_normal(n),
                   missing=rng.random(n), label=rng.random(n))


def _features_and_labels(draws: _Draws, params: Sequence[CityModel], null_rate: float) -> dict[str, np.ndarray]:
    """Rows' features and labels, row i following the truth ``params[i]``."""
    wait_mu = np.array([p.wait_log_mean for p in params])
    dist_mu = np.array([p.distance_log_mean for p in params])
    surge_level = np.array([p.surge_level for p in params])
    wait = np.round(np.exp(wait_mu + 0.45 * draws.normal[:, 0]), 1)
    distance = np.round(np.exp(dist_mu + 0.6 * draws.normal[:, 1]), 2)
    surge = 1.0 + np.round(surge_level * np.abs(draws.normal[:, 2]), 1)
    hour = draws.hour.astype(np.int64)
    rating = np.round(np.clip(4.6 + 0.25 * draws.rating, 1.0, 5.0), 2)
    X = np.column_stack([wait, distance, surge, hour.astype(np.float64), rating])
    Z = (X - _CENTER) / _SCALE
    missing = draws.missing < null_rate
    Z[missing, 4] = 0.0  # a missing rating says nothing (and the trained pipelines impute the median)
    coef = np.array([p.coef for p in params])
    intercept = np.array([p.intercept for p in params])
    probability = _sigmoid(intercept + np.einsum("ij,ij->i", Z, coef))
    rating_or_nan = np.where(missing, np.nan, rating)
    return {"wait_minutes": wait, "distance_km": distance, "surge": surge, "hour": hour, "rating": rating_or_nan,
            TARGET: (draws.label < probability).astype(np.int64), "_p": probability}


def _iso(times: np.ndarray) -> list[str]:
    """Millisecond offsets from the stream start as ISO-8601 UTC strings."""
    return [(_STREAM_START + timedelta(milliseconds=int(ms))).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for ms in times]


def _table(ids: list[str], times_ms: np.ndarray, cities: np.ndarray, values: dict[str, np.ndarray]) -> pa.Table:
    rating = values["rating"]
    return pa.table({
        ID_COL: pa.array(ids, pa.string()),
        TIME_COL: pa.array(_iso(times_ms), pa.string()),
        SEGMENT_COL: pa.array(cities.tolist(), pa.string()),
        "wait_minutes": pa.array(values["wait_minutes"], pa.float64()),
        "distance_km": pa.array(values["distance_km"], pa.float64()),
        "surge": pa.array(values["surge"], pa.float64()),
        "hour": pa.array(values["hour"], pa.int64()),
        "rating": pa.array(rating, pa.float64(), mask=np.isnan(rating)),
        TARGET: pa.array(values[TARGET], pa.int64()),
    })


# -- the three kinds of file --------------------------------------------------------------------------
def make_stream(config: DemoConfig) -> pa.Table:
    """The live events, in time order; the drift city follows its drifted truth from ``drift_index`` on."""
    models = city_models(config.seed, config.cities)
    rng = np.random.default_rng([config.seed, 1])
    n = config.events
    shares = np.array([models[c].share for c in config.cities])
    city_index = rng.choice(len(config.cities), size=n, p=shares / shares.sum())
    gaps = rng.exponential(1000.0 / _SIM_EVENTS_PER_SECOND, n)
    draws = _Draws.draw(rng, n)
    cities = np.array(config.cities, dtype=object)[city_index]
    params = [models[c] for c in cities]
    if config.drift_city is not None:
        drifted = models[config.drift_city].drifted()
        start = config.drift_index or 0
        params = [drifted if i >= start and c == config.drift_city else p
                  for i, (c, p) in enumerate(zip(cities, params, strict=True))]
    values = _features_and_labels(draws, params, config.null_rate)
    times = np.floor(np.cumsum(gaps)).astype(np.int64)
    return _table([f"e-{i}" for i in range(n)], times, cities, values)


def make_training(config: DemoConfig) -> pa.Table:
    """``train_rows`` labelled rows per city from the pre-drift truth, over the weeks before the stream."""
    models = city_models(config.seed, config.cities)
    parts_cities, parts_values, parts_times = [], [], []
    for i, city in enumerate(config.cities):
        rng = np.random.default_rng([config.seed, 2, i])
        n = config.train_rows
        parts_times.append(rng.integers(-_HISTORY_DAYS * 86_400_000, 0, n))
        parts_values.append(_features_and_labels(_Draws.draw(rng, n), [models[city]] * n, config.null_rate))
        parts_cities.append(np.full(n, city, dtype=object))
    times = np.concatenate(parts_times)
    order = np.argsort(times, kind="stable")
    values = {key: np.concatenate([part[key] for part in parts_values])[order] for key in parts_values[0]}
    return _table([f"t-{i}" for i in range(times.size)], times[order], np.concatenate(parts_cities)[order], values)


def make_retrain(config: DemoConfig, city: str) -> pa.Table:
    """Fresh labelled rows for one city: its drifted truth if it is the drift city, else its usual one."""
    if city not in config.cities:
        raise ConfigError(f"retrain city {city!r} is not one of the cities: {', '.join(config.cities)}")
    model = city_models(config.seed, config.cities)[city]
    if city == config.drift_city:
        model = model.drifted()
    rng = np.random.default_rng([config.seed, 3, config.cities.index(city)])
    n = config.retrain_rows
    start_ms = (config.drift_index or 0) * 1000.0 / _SIM_EVENTS_PER_SECOND
    end_ms = config.events * 1000.0 / _SIM_EVENTS_PER_SECOND
    times = np.sort(rng.integers(int(start_ms), int(end_ms) + 1, n))
    values = _features_and_labels(_Draws.draw(rng, n), [model] * n, config.null_rate)
    return _table([f"r-{city}-{i}" for i in range(n)], times, np.full(n, city, dtype=object), values)


# -- files --------------------------------------------------------------------------------------------
def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="needed"))


def write_demo_data(config: DemoConfig, out: str | Path) -> dict[str, Any]:
    """Write every file into ``out`` (created if needed); return the metadata also saved as demo.json."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from None
    ext = "parquet" if config.fmt == "parquet" else "csv"
    files: dict[str, str] = {}

    def save(key: str, table: pa.Table, name: str) -> None:
        _write(table, out / name, config.fmt)
        files[key] = name

    save("train", make_training(config), f"train.{ext}")
    stream = make_stream(config)
    save("stream", stream, f"stream.{ext}")
    if config.split_at:
        cuts = (0, *config.split_indices, config.events)
        for part, (start, end) in enumerate(zip(cuts[:-1], cuts[1:], strict=True), 1):
            save(f"stream_part{part}", stream.slice(start, end - start), f"stream_part{part}.{ext}")
    for city in config.retrain_targets:
        save(f"retrain_{city}", make_retrain(config, city), f"retrain_{city}.{ext}")

    models = city_models(config.seed, config.cities)
    counts = dict(zip(*np.unique(stream.column(SEGMENT_COL).to_numpy(zero_copy_only=False).astype(str),
                                 return_counts=True), strict=True))
    meta: dict[str, Any] = {
        "seed": config.seed, "format": config.fmt, "cities": list(config.cities), "features": list(FEATURES),
        "id_col": ID_COL, "time_col": TIME_COL, "segment_col": SEGMENT_COL, "target": TARGET,
        "events": config.events, "events_per_city": {c: int(counts.get(c, 0)) for c in config.cities},
        "train_rows_per_city": config.train_rows, "retrain_rows": config.retrain_rows, "null_rate": config.null_rate,
        "drift": None if config.drift_city is None else {
            "city": config.drift_city, "at": config.drift_at, "first_index": config.drift_index,
            "first_id": f"e-{config.drift_index}",
            "truth_after": models[config.drift_city].drifted().truth_dict()},
        "split": None if not config.split_at else {
            "at": list(config.split_at), "first_index": list(config.split_indices),
            "first_id": [f"e-{i}" for i in config.split_indices]},
        "files": files,
        "truth": {city: model.truth_dict() for city, model in models.items()},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def read_meta(directory: str | Path) -> dict[str, Any] | None:
    """demo.json from a demo-data directory, or None when there is none."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None

"""bench_compare's stronger peers: a baked model scored in micro-batches per segment, on scorer's own reader.

Both peers run ``scorer worker``'s app, direct reader, pipelined delivery and commits, with the worker's
decode/resolve/score replaced by what a competent team would write around a model baked into the process:
``orjson.loads`` each message, group the batch by segment, one ``(n, 20)`` matrix per segment, one call per
segment, then ``orjson.dumps`` each prediction.

- ``batched``: the fitted scikit-learn pipeline's ``predict_proba`` per segment group;
- ``onnx``: the same pipelines converted with skl2onnx (float32 input, no zipmap) and run by ONNX Runtime
  (one ``InferenceSession`` per segment, one thread each: the machine's cores are shared with the broker).

A new version needs a redeploy (the process is restarted with the other version's files), like ``baked``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import orjson

PEERS = ("batched", "onnx")


def convert_to_onnx(pipelines: dict[str, Any], n_features: int, directory: Path) -> None:
    """Each segment's pipeline as ``<directory>/<segment>.onnx`` (protobuf, no pickle), float32 in, probabilities
    out as a plain tensor."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    directory.mkdir(parents=True, exist_ok=True)
    for segment, pipeline in pipelines.items():
        onx = to_onnx(pipeline, initial_types=[("x", FloatTensorType([None, n_features]))],
                      options={id(pipeline[-1]): {"zipmap": False}}, target_opset=17)
        (directory / f"{segment}.onnx").write_bytes(onx.SerializeToString())


def scorers(kind: str, models_dir: Path, version: int) -> dict[str, Any]:
    """segment -> (predict_proba(X) -> (n, 2) array, classes)."""
    from benchmarks.bench_compare import load_pipelines

    pipelines = load_pipelines(models_dir / f"v{version}.npz")
    if kind == "batched":
        return {seg: (pipe.predict_proba, pipe.classes_) for seg, pipe in pipelines.items()}
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    out = {}
    for seg, pipe in pipelines.items():
        session = ort.InferenceSession(str(models_dir / f"v{version}-onnx" / f"{seg}.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]

        def predict(X: np.ndarray, session: Any = session, names: list[str] = names) -> np.ndarray:
            return session.run([names[1]], {"x": X.astype(np.float32)})[0]

        out[seg] = (predict, pipe.classes_)
    return out


def role_peer(args: argparse.Namespace, features: tuple[str, ...], model: str) -> None:
    """Run scorer's worker app with its scoring replaced by the ``args.kind`` peer."""
    from scorer.config import load_settings
    from scorer.stream.app import create_app, new_worker, worker_of
    from scorer.stream.batch import Batch, BatchResult
    from scorer.stream.worker import WorkerConfig

    version = args.version
    models = scorers(args.kind, Path(args.models_dir), version)
    settings = load_settings(app_id=args.app_id)
    config = WorkerConfig(input_topic=args.input, output_topic=args.output, dlq_topic=args.output,
                          batch_size=1000, batch_window_ms=10.0, web_enabled=False, follow_changes=False,
                          models=(model,), poll_interval=3600)
    app = create_app(settings, config)
    loads, dumps = orjson.loads, orjson.dumps

    async def score(batch: Batch) -> None:
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, record in enumerate(batch.records):
            event = loads(record.value)
            groups.setdefault(event["segment"], []).append((i, event))
        out = []
        for seg, members in groups.items():
            predict, classes = models[seg]
            X = np.array([[e["features"][name] for name in features] for _, e in members], dtype=float)
            proba = predict(X)
            labels = classes[proba.argmax(axis=1)].tolist()
            for (i, e), p, label in zip(members, proba[:, 1].tolist(), labels, strict=True):
                out.append((batch.records[i].key, dumps({
                    "id": e["id"], "model": e["model"], "segment": seg, "version": version, "canary": False,
                    "prediction": p, "label": label}), i))
        batch.result = BatchResult(predictions=out)

    worker_of(app).process = score  # type: ignore[method-assign]
    new_worker(app, "warning").execute_from_commandline()

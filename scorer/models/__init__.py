"""Fixed-architecture models: named numeric arrays in, pure-numpy scoring out.

One module per architecture; importing it registers its Model class under its ``arch`` name.
This package never imports scikit-learn, click, cassandra or faust (the exporters live in ``trainers``).
"""

from scorer.models.base import Model
from scorer.models.registry import archs, build, get, register
from scorer.models.weights import ModelWeights

# Architecture modules register themselves on import: add one import line per architecture module here.
# isort: off
from scorer.models import linear  # noqa: F401
from scorer.models import mlp  # noqa: F401
from scorer.models import trees  # noqa: F401
from scorer.models import ensemble  # noqa: F401
# isort: on

__all__ = ["Model", "ModelWeights", "archs", "build", "get", "register"]

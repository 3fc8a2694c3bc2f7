"""Online learning per segment: scikit-learn's SGD in numpy for many segments at once (``sgd``, ``bank``),
and the learner that turns a label stream into checkpointed versions."""

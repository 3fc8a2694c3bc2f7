"""The retraining worker: refit a segment when its inputs drift or its live accuracy drops, try the new
version as canary or shadow, then promote or retire it on the evidence, recording every step.

``policy`` (pure rules), ``window`` (bounded training rows), ``worker`` (Kafka + store + trainer glue).
"""

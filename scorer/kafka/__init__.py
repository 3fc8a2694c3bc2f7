"""Everything scorer says to Kafka, in one package: client options, topic administration, producers, notices.

- :mod:`scorer.kafka.options`: settings -> aiokafka / faust client options (servers, TLS, SASL), one-line
  failure descriptions;
- :mod:`scorer.kafka.admin`: ``ensure_topics`` / ``delete_topics`` / ``partitions_of``, one error behaviour;
- :mod:`scorer.kafka.producer`: the one producer factory;
- :mod:`scorer.kafka.notices`: the ``model-changes`` notices (encode, publish, follow).

Stream workers, the monitor, the retrain worker, the CLI, the store's change announcements, benchmarks and
tests all go through here; nothing else builds an aiokafka admin client or producer.
"""

from scorer.kafka.admin import TopicSpec, delete_topics, ensure_topics, partitions_of
from scorer.kafka.options import (
    aiokafka_options,
    bootstrap_servers,
    check_connection,
    describe_failure,
    faust_broker_options,
    security_protocol,
    ssl_context,
)
from scorer.kafka.producer import new_producer, start_producer

__all__ = [
    "TopicSpec", "aiokafka_options", "bootstrap_servers", "check_connection", "delete_topics", "describe_failure",
    "ensure_topics", "faust_broker_options", "new_producer", "partitions_of", "security_protocol", "ssl_context",
    "start_producer",
]

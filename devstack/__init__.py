"""Real Cassandra and Kafka for development and tests, from Maven Central artifacts, without docker."""

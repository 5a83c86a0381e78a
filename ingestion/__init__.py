"""Streaming ingestion: Kafka consumers that land raw events in Parquet exactly once in effect,
send bad lines to the dead-letter topic, and keep Feast's user and movie features fresh."""

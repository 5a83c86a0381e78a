"""Online evaluation and monitoring: availability, hit rate and licence cost from the streams, drift, skew, alerts, report.

Reads Kafka topics (`movielog`, `recsys.provenance`), Parquet (the offline store, the served
feature log, its own window tables) and Prometheus, never serving's internals. `recsys monitor`
is its command line (`monitoring.cli`).
"""

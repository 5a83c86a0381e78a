"""Feast definitions of the recsys feature store (entities, sources, feature views, feature services)."""

"""Builds a worker with its real collaborators: Feast online writer and metadata API client."""

from __future__ import annotations

from ingestion.online import OnlineWriter
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker, MovieLookup


def build_worker(settings: IngestSettings, online: bool = True, enrich: bool = True) -> IngestWorker:
    """A worker wired to Feast (when `online`) and the metadata API (when `enrich`)."""
    writer: OnlineWriter | None = None
    if online and settings.push_online:
        writer = _feast_writer(settings)
    movies: MovieLookup | None = None
    if enrich and settings.enrich:
        movies = _movie_lookup(settings)
    return IngestWorker(settings, online=writer, movies=movies)


def _feast_writer(settings: IngestSettings) -> OnlineWriter:
    raise NotImplementedError("wired when feature_repo lands")


def _movie_lookup(settings: IngestSettings) -> MovieLookup:
    raise NotImplementedError("wired when the enrichment client lands")

"""Builds a worker with its real collaborators: Feast online writer, metadata API client, self-description writer."""

from __future__ import annotations

from ingestion.descriptions import DescriptionWriter
from ingestion.online import OnlineWriter
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker, MovieLookup, UserLookup


def build_worker(settings: IngestSettings, online: bool = True, enrich: bool = True) -> IngestWorker:
    """A worker wired to Feast (when `online`) and the metadata API and self-descriptions (when `enrich`)."""
    writer: OnlineWriter | None = None
    if online and settings.push_online:
        writer = _feast_writer(settings)
    movies: MovieLookup | None = None
    users: UserLookup | None = None
    descriptions: DescriptionWriter | None = None
    if enrich and settings.enrich:
        from ingestion.enrichment import MetadataClient

        client = MetadataClient(settings.enrichment.model_copy(update={"base_url": settings.meta_url}))
        movies, users = client.get_movies, client.get_users
        descriptions = DescriptionWriter(client.lookup_users)  # its Lookup says who got no answer
    return IngestWorker(settings, online=writer, movies=movies, users=users, descriptions=descriptions)


def _feast_writer(settings: IngestSettings) -> OnlineWriter:
    import redis

    from ingestion.feast_bridge import open_feature_store
    from ingestion.online import FeastOnlineWriter

    signal = redis.Redis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    return FeastOnlineWriter(open_feature_store(settings.var_dir, settings.redis_url), signal)

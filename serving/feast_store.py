"""The Feast store of the request path: Redis with short socket timeouts, the registry cached without TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fast_store(var: Path, redis_url: str, socket_timeout_s: float) -> Any:
    """A Feast store whose Redis calls give up after `socket_timeout_s` and whose registry a request never re-reads."""
    from feast import FeatureStore

    from feature_repo.config import REPO_DIR, load_config

    sep = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{sep}socket_timeout={socket_timeout_s}&socket_connect_timeout={socket_timeout_s}"
    config = load_config(var.resolve(), url)
    # TTL 0 = never expires: a request never re-reads the registry; our thread refreshes it.
    config.registry.cache_ttl_seconds = 0
    return FeatureStore(repo_path=str(REPO_DIR), config=config)

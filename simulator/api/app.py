"""The metadata API app: `create_app()` factory; the lifespan loads the world, routes look records up.

    GET /user/<id>[,<id>...]    user records (demographics and self-description answers)
    GET /movie/<id>[,<id>...]   movie records (TMDB-like fields and the license cost per play)
    GET /healthz                liveness and what is loaded

One id answers the record (404 when unknown); several ids answer a list in request order in
which unknown ids appear as `{"user_id": 7, "error": "not found"}` (or `"id"` for movies), so
one bad id never spoils a batch. Malformed ids and more than `api_max_ids` ids are a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request

from simulator.api.errors import ApiError, NotFoundError, WorldNotLoadedError, handle_api_error
from simulator.api.faults import ID_FIELDS, ApiFaults
from simulator.api.records import MetadataStore, Record, check_movie_ids, parse_user_ids, split_ids
from simulator.settings import SimSettings, get_sim_settings
from simulator.state import SimTimeReader


def get_store(request: Request) -> MetadataStore:
    """The loaded world (dependency)."""
    store: MetadataStore | None = getattr(request.app.state, "store", None)
    if store is None:
        raise WorldNotLoadedError("the world is not loaded")
    return store


def get_faults(request: Request) -> ApiFaults:
    """The fault injector (dependency)."""
    faults: ApiFaults = request.app.state.faults
    return faults


Store = Annotated[MetadataStore, Depends(get_store)]
Faults = Annotated[ApiFaults, Depends(get_faults)]


def _answer(
    resource: str, ids: list[Any], records: list[Record | None], faults: ApiFaults, single: bool
) -> Any:
    key = ID_FIELDS[resource]
    if single:
        if records[0] is None:
            raise NotFoundError(f"{resource} {ids[0]} not found")
        return faults.shape(resource, [records[0]])[0]
    found = faults.shape(resource, [r for r in records if r is not None])
    shaped = iter(found)
    return [
        next(shaped) if r is not None else {key: i, "error": "not found"}
        for i, r in zip(ids, records, strict=True)
    ]


router = APIRouter()


@router.get("/user/{ids:path}")
async def get_users(ids: str, store: Store, faults: Faults, request: Request) -> Any:
    """One user record, or a list for comma-separated ids."""
    s: SimSettings = request.app.state.settings
    user_ids = parse_user_ids(split_ids(ids, s.api_max_ids))
    await faults.before_answer()
    return _answer("user", user_ids, store.users(user_ids), faults, len(user_ids) == 1)


@router.get("/movie/{ids:path}")
async def get_movies(ids: str, store: Store, faults: Faults, request: Request) -> Any:
    """One movie record, or a list for comma-separated ids."""
    s: SimSettings = request.app.state.settings
    movie_ids = check_movie_ids(split_ids(ids, s.api_max_ids))
    await faults.before_answer()
    return _answer("movie", movie_ids, store.movies(movie_ids), faults, len(movie_ids) == 1)


@router.get("/healthz")
async def healthz(store: Store) -> dict[str, Any]:
    """Liveness, and the size and seed of the loaded world."""
    return {"status": "ok", "users": store.n_users, "movies": store.n_movies, "seed": store.meta.seed}


def create_app(settings: SimSettings | None = None, sim_dir: Path | None = None) -> FastAPI:
    """The metadata API; the world under `sim_dir` (default: the settings' <var>/sim) loads at start-up."""
    s = settings or get_sim_settings()
    where = sim_dir or s.sim_dir

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = MetadataStore.load(where)
        yield
        app.state.store = None

    app = FastAPI(title="Simulated metadata API", version="1", lifespan=lifespan)
    app.state.settings = s
    app.state.store = None
    app.state.faults = ApiFaults(s, SimTimeReader(where))
    app.add_exception_handler(ApiError, handle_api_error)
    app.include_router(router)
    return app

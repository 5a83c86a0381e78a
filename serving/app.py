"""The recommendation API: `create_app()` builds the FastAPI app; its lifespan loads everything before traffic.

Routes: `GET /recommend/<userid>` (text/plain, up to 20 ids), `/healthz`, `/readyz`, `/metrics`,
`GET /provenance/<request_id>`, and the admin routes (bearer token): experiments view and
reload, models view and refresh, and the Alertmanager sink `POST /admin/alerts`.
The request path never raises to the client: every failure degrades to the fallback list.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import metrics as M  # noqa: N812
from serving.experiments import ExperimentFileError
from serving.provenance_record import ProvenanceError, ProvenanceRecord, hash_features
from serving.recommender import Outcome, has_history, rank, recent_movies, without
from serving.routing import resolve_model
from serving.runtime import Runtime
from serving.settings import ServingSettings, get_serving_settings
from serving.user_features import FeaturesUnavailableError

log = logging.getLogger(__name__)

USER_ID: Final = re.compile(r"[0-9]{1,18}")
"""A user id: a non-negative integer that fits int64 (at most 18 digits)."""
KEY_FEATURES: Final = (
    "user_watch_stats__watch_count_total",
    "user_watch_stats__last_active_ts",
    "user_rating_stats__rating_mean",
    "user_profile__age",
)
"""User features whose values the provenance record hashes (identifies the state the answer saw)."""


def _plain(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


def create_app(settings: ServingSettings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The API; `runtime` injects prepared components (tests), else the lifespan builds them from settings."""
    cfg = settings or get_serving_settings()
    cfg.check_admin_token()  # outside local mode an unusable token stops the start here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt: Runtime = runtime if runtime is not None else await asyncio.to_thread(Runtime.build, cfg)
        app.state.rt = rt
        rt.start()
        await warm_up(app)
        gc.collect()
        gc.freeze()  # warm-up objects leave the collector's view: no multi-ms pauses under load
        try:
            yield
        finally:
            if rt.users is not None:
                await rt.users.aclose()
            rt.stop()

    app = FastAPI(title="recsys", summary="Movie recommendations under a 600 ms SLA", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        return _plain(422, f"invalid request: {first.get('msg', 'malformed')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return _plain(exc.status_code, str(exc.detail))

    @app.get("/recommend/{user_id}", response_class=PlainTextResponse)
    async def recommend(user_id: str, request: Request) -> Response:
        """Up to 20 movie ids for a user, best first, comma-separated, one line."""
        start = time.perf_counter()
        if not USER_ID.fullmatch(user_id):
            reason = "user id must be a non-negative integer of at most 18 digits"
            M.REQUESTS.labels("400", "-", "-", "rejected").inc()
            return _plain(400, f"bad user id {user_id[:40]!r}: {reason}")
        rt: Runtime = request.app.state.rt
        return await answer(rt, int(user_id), start)

    @app.get("/recommend/", include_in_schema=False)
    @app.get("/recommend", include_in_schema=False)
    async def recommend_empty() -> Response:
        M.REQUESTS.labels("400", "-", "-", "rejected").inc()
        return _plain(400, "user id is empty: GET /recommend/<userid>")

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> Response:
        """Liveness: the process answers (fallback lists need nothing else)."""
        return _plain(200, "ok")

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        """Readiness: a model and the movie features are loaded."""
        rt: Runtime = request.app.state.rt
        status = rt.readiness()
        M.READY.set(1 if status["ready"] else 0)
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    @app.get("/metrics")
    async def metrics_route(request: Request) -> Response:
        """Prometheus exposition."""
        rt: Runtime = request.app.state.rt
        rt.export_gauges()
        body, content_type = M.render()
        return Response(body, media_type=content_type)

    @app.get("/provenance/{request_id}")
    async def provenance(request_id: str, request: Request) -> Response:
        """Which model version answered a request, the code that trained it and the data it learned from."""
        if not re.fullmatch(r"[0-9a-f]{32}", request_id):
            return _plain(400, "request id must be 32 lowercase hex characters (the X-Request-Id header)")
        rt: Runtime = request.app.state.rt
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, rt.explain, request_id)
        except ProvenanceError as exc:
            return _plain(getattr(exc, "http_status", 404), str(exc))
        except Exception as exc:  # the registry is down: say so
            return _plain(503, f"provenance lookup failed: {exc}")
        return JSONResponse(body)

    def admin(request: Request) -> None:
        """Dependency of the admin routes: 401 unless the bearer token is the admin token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and cfg.admin_token_matches(token.strip())):
            raise StarletteHTTPException(401, "admin route: send Authorization: Bearer <RECSYS_ADMIN_TOKEN>")

    @app.get("/admin/experiments", dependencies=[Depends(admin)])
    async def experiments(request: Request) -> Response:
        """The active experiment, its arms and shares (admin)."""
        rt: Runtime = request.app.state.rt
        return JSONResponse(rt.router.describe() | {"models": rt.models.available()})

    @app.post("/admin/experiments/reload", dependencies=[Depends(admin)])
    async def reload_experiments(request: Request) -> Response:
        """Validate and load the experiment file again; an invalid file is refused and the old one serves (admin)."""
        rt: Runtime = request.app.state.rt
        try:
            summary = rt.router.reload(cfg.experiments_file)
        except ExperimentFileError as exc:
            return JSONResponse({"reloaded": False, "error": str(exc)}, status_code=422)
        rt.pin_from_router()
        return JSONResponse({"reloaded": True, **summary.to_dict()})

    @app.get("/admin/models", dependencies=[Depends(admin)])
    async def models(request: Request) -> Response:
        """Loaded versions per ref, failed loads, last registry poll (admin)."""
        rt: Runtime = request.app.state.rt
        return JSONResponse(rt.models_status())

    @app.post("/admin/models/refresh", dependencies=[Depends(admin)])
    async def refresh_models(request: Request) -> Response:
        """Poll the registry now instead of at the next interval (admin)."""
        rt: Runtime = request.app.state.rt
        changed = await asyncio.get_running_loop().run_in_executor(None, rt.models.refresh)
        return JSONResponse({"changed": changed, **rt.models_status()})

    @app.post("/admin/alerts", dependencies=[Depends(admin)])
    async def alerts(request: Request) -> Response:
        """Alertmanager's webhook: forward each alert to `recsys.alerts` (admin)."""
        try:
            payload = await request.json()
        except ValueError:
            return _plain(400, "body must be Alertmanager's webhook JSON")
        rt: Runtime = request.app.state.rt
        count = rt.forward_alerts(payload)
        return JSONResponse({"forwarded": count})

    return app


async def answer(rt: Runtime, user_id: int, start: float) -> Response:
    """The recommendation path for a valid id; see the module doc of serving.recommender."""
    request_id = uuid.uuid4().hex
    assignment = rt.router.assign(user_id)
    arm = assignment.arm
    choice = resolve_model(arm, rt.models.available())
    bundle = rt.models.loaded.get(choice.ref) if choice.ref else None
    user: dict[str, Any] | None = None
    outcome: Outcome
    try:
        user = await rt.users.get(user_id) if rt.users is not None else None
        if rt.users is None:
            raise FeaturesUnavailableError("no_feature_store")
    except FeaturesUnavailableError as exc:
        M.FEATURE_ERRORS.labels(exc.reason.split(":")[0]).inc()
        outcome = rt.fallback_outcome(user_id, bundle, f"features_{exc.reason}")
    else:
        try:
            if bundle is None:
                outcome = rt.fallback_outcome(user_id, None, "no_model")
            elif not has_history(user, bundle, user_id):
                outcome = rt.cold_start(user_id, arm.cold_start, recent_movies(user))
            else:
                outcome = rank(user_id, user or {}, bundle, rt.table, arm.lam, time.time())
                if len(outcome.movies) < 20:  # too few candidates left: top up, never repeat or re-show
                    extra = without(rt.fallback, set(outcome.movies) | set(recent_movies(user)), 20)
                    outcome = Outcome((outcome.movies + extra)[:20], outcome.path, outcome.candidate_sources,
                                      outcome.lam, outcome.reason)  # fmt: skip
        except Exception as exc:  # a broken model must not take availability with it
            log.exception("model path failed for user %s", user_id)
            outcome = rt.fallback_outcome(user_id, bundle, f"model_error:{type(exc).__name__}")
    body = ",".join(outcome.movies)
    latency = time.perf_counter() - start
    served_version = bundle.version if bundle is not None and outcome.path == "model" else None
    model_label = f"v{served_version}" if served_version is not None else "none"
    M.LATENCY.observe(latency)
    M.REQUESTS.labels("200", arm.name, model_label, outcome.path).inc()
    if outcome.path == "fallback":
        M.FALLBACKS.labels((outcome.reason or "unknown").split(":")[0]).inc()
    elif outcome.path == "cold_start":
        # A short label: the reason text is for the provenance record, not a metric dimension.
        served = "popular" if outcome.reason == "popular" else f"{arm.cold_start}_unavailable"
        M.COLD_STARTS.labels(served).inc()
    M.LIST_COST.labels(arm.name).observe(rt.list_cost(outcome.movies))
    rt.provenance.record(
        ProvenanceRecord(
            request_id=request_id,
            user_id=user_id,
            experiment=assignment.experiment,
            arm=arm.name,
            model_name=bundle.name if served_version is not None and bundle is not None else None,
            model_version=served_version,
            model_ref=choice.ref if served_version is not None else None,
            lam=outcome.lam,
            feature_service=rt.feature_service if user is not None else None,
            features_hash=hash_features({k: user.get(k) for k in KEY_FEATURES}) if user else None,
            candidate_sources=outcome.candidate_sources,
            cold_start=outcome.reason if outcome.path == "cold_start" else None,
            result=outcome.movies,
            fallback=(outcome.reason if outcome.path == "fallback" else choice.fallback),
            latency_ms=round(latency * 1000.0, 3),
        )
    )
    headers = {
        "X-Request-Id": request_id,
        "X-Model-Version": model_label,
        "X-Arm": arm.name,
        "X-Experiment": assignment.experiment or "none",
        "X-Recommendation-Path": outcome.path,
    }
    return PlainTextResponse(body, headers=headers)


async def warm_up(app: FastAPI) -> None:
    """Run a few requests through the whole path so first real requests do not pay for lazy imports."""
    rt: Runtime = app.state.rt
    for user_id in rt.warm_up_users():
        try:
            await answer(rt, user_id, time.perf_counter())
        except Exception:  # warm-up must never stop the start
            log.exception("warm-up request failed")

"""`GET /recommend/<userid>`: up to 20 movie ids, best first; `answer()` is the whole path for a valid id.

The path never raises to the client: every failure inside degrades to the fallback list. Under a
running `interleave` experiment a user with history gets both arms' lists merged
(`serving.interleave_path`): `X-Arm: interleave`, and the record's `interleave` holds the teams.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from serving import metrics as M  # noqa: N812
from serving.api.deps import RuntimeDep
from serving.api.responses import VALIDATION, Responses, text
from serving.cold_start import POLICY as SELF_DESCRIPTION
from serving.experiments import INTERLEAVE_ARM
from serving.feature_log import LoggedAnswer
from serving.interleave_path import NO_FEATURES, interleave, ranked
from serving.post_scoring import finalize
from serving.provenance_record import ProvenanceRecord, hash_features
from serving.recommender import Outcome, has_history
from serving.routing import loaded_bundle, resolve_model
from serving.runtime import Runtime
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
MODEL_PATHS: Final = frozenset({"model", NO_FEATURES})
"""Paths on which a model version answered (the provenance record names it)."""

ANSWER_HEADERS: Final = {
    "X-Request-Id": "The request's id (uuid4 hex): `GET /provenance/<id>` explains the answer.",
    "X-Model-Version": "`v<N>` of the model that answered, or `none` (fallback, cold start).",
    "X-Arm": "The experiment arm (`interleave` for an interleaved answer).",
    "X-Experiment": "The running experiment, or `none`.",
    "X-Recommendation-Path": "`model`, `model_no_features`, `cold_start` or `fallback`.",
}
"""Headers of every answer to a valid user id, for the OpenAPI document."""
RESPONSES: Final[Responses] = {
    200: {
        "description": "Up to 20 movie ids, best first, comma-separated on one line (maybe empty).",
        "headers": {
            **{
                name: {"description": doc, "required": True, "schema": {"type": "string"}}
                for name, doc in ANSWER_HEADERS.items()
            },
            "X-Cold-Start": {
                "description": "On cold-start answers: the policy and its outcome.",
                "schema": {"type": "string"},
            },
        },
    },
    400: text("The user id is not a non-negative integer of at most 18 digits."),
    422: VALIDATION,
}
"""What `/recommend/<userid>` answers (GET; HEAD the same without a body)."""

router = APIRouter(tags=["recommend"])


@router.api_route(
    "/recommend/{user_id}",
    methods=["GET", "HEAD"],
    response_class=PlainTextResponse,
    responses=RESPONSES,
    operation_id="recommend",  # FastAPI would derive it from whichever method its set yields first
)
async def recommend(user_id: str, rt: RuntimeDep, request: Request) -> Response:
    """Up to 20 movie ids for a user, best first, comma-separated, one line (HEAD: the same without the body)."""
    start = time.perf_counter()
    if not USER_ID.fullmatch(user_id):
        reason = "user id must be a non-negative integer of at most 18 digits"
        M.REQUESTS.labels("400", "-", "-", "rejected").inc()
        response: Response = PlainTextResponse(f"bad user id {user_id[:40]!r}: {reason}", status_code=400)
    else:
        response = await answer(rt, int(user_id), start)
    return _head(response) if request.method == "HEAD" else response


@router.api_route("/recommend/", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/recommend", methods=["GET", "HEAD"], include_in_schema=False)
async def recommend_empty(request: Request) -> Response:
    """A request without a user id: 400 with the expected form."""
    M.REQUESTS.labels("400", "-", "-", "rejected").inc()
    response = PlainTextResponse("user id is empty: GET /recommend/<userid>", status_code=400)
    return _head(response) if request.method == "HEAD" else response


def _head(response: Response) -> Response:
    """HEAD: GET's status and headers (Content-Length included), no body (RFC 9110 9.3.2)."""
    return Response(status_code=response.status_code, headers=dict(response.headers))


async def answer(rt: Runtime, user_id: int, start: float) -> Response:
    """The recommendation path for a valid id; see the module doc of serving.recommender."""
    request_id = uuid.uuid4().hex
    assignment = rt.router.assign(user_id)
    arm = assignment.arm
    choice = resolve_model(arm, rt.models.available())
    bundle = loaded_bundle(rt.models.loaded, choice)
    user: dict[str, Any] | None = None
    outcome: Outcome
    interleaved: dict[str, Any] | None = None
    interleave_fallback: str | None = None
    try:
        user = await rt.users.get(user_id) if rt.users is not None else None
        if rt.users is None:
            raise FeaturesUnavailableError("no_feature_store")
    except FeaturesUnavailableError as exc:
        M.FEATURE_ERRORS.labels(exc.reason.split(":")[0]).inc()
        outcome = rt.fallback_outcome(user_id, bundle, f"features_{exc.reason}")
    else:
        try:
            if (time.perf_counter() - start) * 1000.0 > rt.settings.request_budget_ms:
                # The feature read (or a stalled event loop) used the budget: scoring now would answer late.
                outcome = rt.fallback_outcome(user_id, bundle, "budget_exceeded")
            elif bundle is None:
                outcome = rt.fallback_outcome(user_id, None, "no_model")
            elif not has_history(user, bundle, user_id):
                # No stored description yet: read it inline (metadata API + encode, bounded by its timeout).
                inline = (
                    await rt.cold.fetch_inline(user_id, user) if arm.cold_start == SELF_DESCRIPTION else None
                )
                outcome = rt.cold_start(user_id, arm.cold_start, user, inline)
            else:
                outcome = ranked(rt, user_id, user, bundle, arm)
                if assignment.partner is not None:
                    version_a = bundle.version if outcome.path in MODEL_PATHS else None
                    pair = (arm, assignment.partner)
                    mixed = interleave(rt, user_id, user, outcome, pair, version_a, request_id)
                    outcome, interleaved, interleave_fallback = mixed.outcome, mixed.record, mixed.fallback
        except Exception as exc:  # a broken model must not take availability with it
            log.exception("model path failed for user %s", user_id)
            outcome = rt.fallback_outcome(user_id, bundle, f"model_error:{type(exc).__name__}")
    s = rt.settings  # every path: adult rule, genre cap, exploration (not of interleaved lists), counted
    outcome = finalize(outcome, user, user_id, rt.table, rt.fallback, rt.now(), s.max_genre_share,
                       s.exploration_share, explore=interleaved is None, head=s.exploration_head)  # fmt: skip
    body = ",".join(outcome.movies)
    latency = time.perf_counter() - start
    served_version = bundle.version if bundle is not None and outcome.path in MODEL_PATHS else None
    no_features = outcome.path == NO_FEATURES
    model_label = f"v{served_version}" if served_version is not None else "none"
    arm_label = INTERLEAVE_ARM if interleaved is not None else arm.name
    M.LATENCY.observe(latency)
    handed_over = outcome.path == "model" and (outcome.reason or "").startswith("handover:")
    M.REQUESTS.labels("200", arm_label, model_label, outcome.path).inc()
    if outcome.path == "fallback":
        M.FALLBACKS.labels((outcome.reason or "unknown").split(":")[0]).inc()
    elif outcome.path == "cold_start":
        # The policy that served (`popular`, `self_description`); the outcome after ':' has its own counter.
        M.COLD_STARTS.labels((outcome.reason or "popular").split(":")[0]).inc()
    M.LIST_COST.labels(arm_label).observe(rt.list_cost(outcome.movies))
    rt.provenance.record(
        ProvenanceRecord(
            request_id=request_id,
            user_id=user_id,
            experiment=assignment.experiment,
            arm=arm_label,
            model_name=bundle.name if served_version is not None and bundle is not None else None,
            model_version=served_version,
            model_ref=choice.ref if served_version is not None else None,
            lam=outcome.lam,
            feature_service=rt.feature_service if user is not None else None,
            features_hash=hash_features({k: user.get(k) for k in KEY_FEATURES})
            if user and not no_features
            else None,
            candidate_sources=outcome.candidate_sources,
            cold_start=outcome.reason if outcome.path == "cold_start" or handed_over else None,
            result=outcome.movies,
            fallback=(
                outcome.reason
                if outcome.path == "fallback" or no_features
                else interleave_fallback or choice.fallback
            ),
            latency_ms=round(latency * 1000.0, 3),
            interleave=interleaved,
        )
    )
    log_features(rt, outcome, request_id, user_id, served_version, arm_label)
    headers = {
        "X-Request-Id": request_id,
        "X-Model-Version": model_label,
        "X-Arm": arm_label,
        "X-Experiment": assignment.experiment or "none",
        "X-Recommendation-Path": outcome.path,
    }
    if outcome.path == "cold_start" or handed_over:
        headers["X-Cold-Start"] = outcome.reason or ""
    return PlainTextResponse(body, headers=headers)


def log_features(
    rt: Runtime, outcome: Outcome, request_id: str, user_id: int, version: int | None, arm: str
) -> None:
    """Hand a sampled model answer's scored rows to the feature log (a draw and a queue put; never raises)."""
    flog = rt.feature_log
    if flog is None or outcome.scored is None or version is None or not flog.sample():
        return
    flog.offer(LoggedAnswer(time.time(), request_id, user_id, version, arm, outcome.scored))

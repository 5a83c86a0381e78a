"""The ranking step of one answer, and the interleaved answer built from two arms' rankings.

`ranked` is one arm's model answer to a user with history (rank, the missing-features mark, the
self-description hand-over, the top-up to 20, the ranking constraints of `post_scoring.constrain`):
the plain path and both sides of an interleaving use it, so each interleaved team is served
exactly as that arm would be in an A/B split.

`interleave` runs when the router gives a `partner` (a running `interleave` experiment): it ranks
with team B's own model, λ and budget and merges with team A's list by team draft
(`serving.interleaving`, coins seeded by the request id). Only a normal model answer is merged:
cold-start, fallback and missing-features answers stay team A's (control's) alone. When team B
cannot answer (its model not loaded, or it raises), the answer is team A's alone and the reason
goes into the provenance record's `fallback`, the same rule as an A/B arm whose model is missing;
the request never fails for it. `merge` is the pure step, tested on plain lists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Final

from serving import metrics as M  # noqa: N812
from serving.cold_start import POLICY as SELF_DESCRIPTION
from serving.cold_start_paths import handover_outcome
from serving.experiments import Arm
from serving.interleaving import team_draft
from serving.models import ModelBundle
from serving.post_scoring import constrain
from serving.recommender import TOP_K, Outcome, features_missing, rank, recent_movies, without
from serving.routing import loaded_bundle, resolve_model
from serving.runtime import Runtime

log = logging.getLogger(__name__)

NO_FEATURES: Final = "model_no_features"
"""Path of a model answer to a known user whose online features were missing."""
NO_FEATURES_REASON: Final = "no_user_features"
"""The provenance record's `fallback` for such an answer."""


@dataclass(frozen=True)
class Interleaving:
    """The outcome of an interleaving attempt: what to answer, the record's `interleave` and any `fallback` reason."""

    outcome: Outcome
    record: dict[str, Any] | None = None
    """The provenance record's `interleave` (None: team A answered alone)."""
    fallback: str | None = None
    """Why team A answered alone although the experiment interleaves (None: merged, or not a model answer)."""


def ranked(rt: Runtime, user_id: int, user: dict[str, Any] | None, bundle: ModelBundle, arm: Arm) -> Outcome:
    """One arm's model answer to a user with history: its λ and budget, its hand-over, topped up to 20."""
    outcome = rank(user_id, user or {}, bundle, rt.table, arm.lam, rt.now(), cost_budget=arm.cost_budget)
    if features_missing(user):
        # Known to the model's index, yet no online row: the store lost it (flushed, restarted
        # empty). Still the model's list (index candidates), never passed off as a normal answer.
        M.MISSING_USER_FEATURES.inc()
        outcome = replace(outcome, path=NO_FEATURES, reason=NO_FEATURES_REASON)
    elif arm.cold_start == SELF_DESCRIPTION:  # a little history: mixed with the description
        outcome = handover_outcome(rt.cold, outcome, user)
    if len(outcome.movies) < TOP_K:  # too few candidates left: top up, never repeat or re-show
        extra = without(rt.fallback, set(outcome.movies) | set(recent_movies(user)), TOP_K)
        outcome = replace(outcome, movies=(outcome.movies + extra)[:TOP_K])
    # Each arm's list under the adult rule and genre cap, so an interleaved team is served as in an A/B split.
    return constrain(outcome, user, rt.table, rt.fallback, rt.settings.max_genre_share)


def merge(
    a: Outcome,
    b: Outcome,
    seed: str,
    names: tuple[str, str],
    versions: tuple[int | None, int | None],
    k: int = TOP_K,
) -> Interleaving:
    """Team-draft merge of team A's and team B's answers; the record names the arms, versions and teams.

    The merged outcome keeps A's candidate sources, λ, reason and scored rows (the feature log
    samples A's rows under A's version); only the movies are the merge.
    """
    merged = team_draft(a.movies, b.movies, k, seed=seed)
    record = {
        "teams": merged.to_record(),
        "a": names[0],
        "b": names[1],
        "a_version": versions[0],
        "b_version": versions[1],
    }
    return Interleaving(replace(a, movies=list(merged.movies)), record)


def interleave(
    rt: Runtime,
    user_id: int,
    user: dict[str, Any] | None,
    a: Outcome,
    arms: tuple[Arm, Arm],
    version_a: int | None,
    seed: str,
) -> Interleaving:
    """Rank with team B and merge with team A's outcome `a`; team A alone when B cannot answer or `a` is no model list."""
    if a.path != "model":  # missing features: a degraded answer is not a fair comparison
        return Interleaving(a)
    arm_a, arm_b = arms
    choice = resolve_model(arm_b, rt.models.available())
    bundle_b = loaded_bundle(rt.models.loaded, choice)
    if choice.fallback is not None or bundle_b is None:
        # B resolved to the champion (or nothing): merging would be A against A under B's name.
        return Interleaving(a, None, f"interleave: {arm_b.model} not available: {arm_a.name} alone")
    try:
        b = ranked(rt, user_id, user, bundle_b, arm_b)
    except Exception as exc:  # team B's model must not take the answer with it
        log.exception("interleave: team B (%s) failed for user %s", arm_b.name, user_id)
        return Interleaving(a, None, f"interleave_error:{type(exc).__name__}")
    if b.path != "model":
        return Interleaving(a, None, f"interleave: {arm_b.name} answered {b.path}")
    return merge(a, b, seed, (arm_a.name, arm_b.name), (version_a, bundle_b.version))

"""Team-draft interleaving: the merge's invariants, the record string, crediting watches, the verdict and its sample size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest

from monitoring.interleave_credit import (
    Preference,
    credit,
    preference,
    teams_by_movie,
    users_needed_interleaving,
)
from serving.interleaving import Interleaved, team_draft

# Small alphabets so the two lists overlap often (the interesting case for a draft).
rankings = st.lists(st.sampled_from([f"m{i}" for i in range(12)]), max_size=15)
seeds = st.one_of(st.integers(0, 2**40), st.text(max_size=10), st.binary(max_size=10))


def _picked_in_order(ranking: list[str], picked: list[str]) -> bool:
    first_rank = {m: i for i, m in reversed(list(enumerate(ranking)))}
    ranks = [first_rank[m] for m in picked]
    return ranks == sorted(ranks)


# --- team draft -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(a=rankings, b=rankings, k=st.integers(0, 20), seed=seeds)
def test_team_draft_has_no_duplicates_the_right_length_and_each_pick_is_its_teams_best_remaining(
    a: list[str], b: list[str], k: int, seed: int | str | bytes
) -> None:
    out = team_draft(a, b, k, seed)
    assert len(set(out.movies)) == len(out.movies)
    assert len(out.movies) == min(k, len(set(a) | set(b)))
    for i, (movie, team) in enumerate(zip(out.movies, out.teams, strict=True)):
        ranking = a if team == "A" else b
        assert movie == next(m for m in ranking if m not in out.movies[:i])
    for team, ranking in (("A", a), ("B", b)):
        assert _picked_in_order(ranking, [m for m, t in zip(out.movies, out.teams, strict=True) if t == team])
    assert team_draft(a, b, k, seed) == out  # deterministic for a seed


@settings(max_examples=200, deadline=None)
@given(
    a=st.permutations([f"m{i}" for i in range(30)]),
    b=st.permutations([f"m{i}" for i in range(30)]),
    k=st.integers(1, 30),
    seed=seeds,
)
def test_when_both_lists_are_long_every_prefix_has_team_sizes_within_one(
    a: list[str], b: list[str], k: int, seed: int | str | bytes
) -> None:
    out = team_draft(a, b, k, seed)
    gap = 0
    for team in out.teams:
        gap += 1 if team == "A" else -1
        assert abs(gap) <= 1


def test_a_used_up_list_hands_its_turns_to_the_other() -> None:
    out = team_draft(["x"], ["y1", "y2", "y3", "y4"], 10, "r1")
    assert set(out.movies) == {"x", "y1", "y2", "y3", "y4"} and out.teams.count("A") == 1
    assert team_draft([], [], 5, 1).movies == () and team_draft(["a"], ["b"], 0, 1).movies == ()
    with pytest.raises(ValueError):
        team_draft(["a"], ["b"], -1, 1)


def test_the_seed_decides_the_coins_reproducibly_and_different_seeds_differ() -> None:
    a, b = [f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]
    outs = {team_draft(a, b, 20, f"req-{i}").teams for i in range(50)}
    assert len(outs) > 40  # 2**10 coin patterns: 50 seeds should almost never repeat much
    assert team_draft(a, b, 20, 42) == team_draft(a, b, 20, "42") == team_draft(a, b, 20, b"42")
    # Pinned: the coins are BLAKE2b bits, so a logged request id rebuilds its list in any process or version.
    assert team_draft(a, b, 20, "pinned").to_record() == "BABABABAABBABAABBABA"


def test_identical_lists_give_the_list_itself_and_each_team_leads_half_the_time() -> None:
    ranking = [f"m{i}" for i in range(20)]
    top_for_a = 0
    a_share_by_position = np.zeros(20)
    runs = 2000
    for i in range(runs):
        out = team_draft(ranking, ranking, 20, i)
        assert list(out.movies) == ranking
        top_for_a += out.teams[0] == "A"
        a_share_by_position += np.array([t == "A" for t in out.teams])
    # A watch of any fixed position credits each team half the time: no built-in bias.
    assert abs(top_for_a / runs - 0.5) < 0.04  # ~3.6 standard errors
    assert np.all(np.abs(a_share_by_position / runs - 0.5) < 0.04)


# --- record string ----------------------------------------------------------------------------


def test_the_record_round_trips_and_monitoring_reads_it_without_serving() -> None:
    out = team_draft(["a", "b", "c"], ["c", "d", "a"], 4, "req")
    record = out.to_record()
    assert len(record) == 4 and set(record) <= {"A", "B"}
    assert Interleaved.from_record(out.movies, record) == out
    parsed = teams_by_movie(out.movies, record)
    assert parsed == {m: out.team_of(m) for m in out.movies}
    assert out.team_of("zzz") is None


@pytest.mark.parametrize(
    ("movies", "record"),
    [(("a", "b"), "A"), (("a", "b"), "AC"), (("a", "a"), "AB")],
)
def test_a_record_that_does_not_fit_its_list_is_refused_on_both_sides(
    movies: tuple[str, ...], record: str
) -> None:
    with pytest.raises(ValueError):
        teams_by_movie(movies, record)
    with pytest.raises(ValueError):
        Interleaved.from_record(movies, record)


# --- credit -----------------------------------------------------------------------------------


def test_a_watch_credits_the_team_that_placed_the_movie_and_unlisted_watches_credit_nobody() -> None:
    teams = {"x": "A", "y": "B", "z": "B"}
    assert credit(teams, []) == (0, 0)
    assert credit(teams, ["x"]) == (1, 0)
    assert credit(teams, ["y", "z", "nope"]) == (0, 2)
    assert credit(teams, ["nope", "other"]) == (0, 0)
    assert credit(teams, ["x"] * 90 + ["y"]) == (1, 1)  # 90 watch-minute lines of one movie are one click


# --- verdict ----------------------------------------------------------------------------------


def test_preference_counts_wins_ties_and_skips_users_without_credit() -> None:
    pref = preference([(2, 1), (0, 3), (1, 1), (0, 0), (0, 1)])
    assert (pref.wins_a, pref.wins_b, pref.ties, pref.n) == (1, 2, 1, 4)
    assert pref.delta == pytest.approx(1 / 4)
    assert pref.ci_low < pref.delta < pref.ci_high
    assert pref.winner is None and 0 < pref.p_value <= 1
    empty = preference([])
    assert empty.n == 0 and empty.p_value == 1.0 and empty.winner is None
    lopsided = preference([(0, 1)] * 30)
    assert lopsided.winner == "B" and lopsided.ci_high == 1.0
    assert preference([(1, 0)] * 30).winner == "A"
    with pytest.raises(ValueError):
        preference([(-1, 0)])


def _simulated_users(rng: np.random.Generator, users: int, p_b: float) -> list[tuple[int, int]]:
    """End to end: each user sees a few interleaved lists and watches the top of B's ranking with probability p_b."""
    catalogue = np.array([f"m{i}" for i in range(200)])
    per_user = []
    for user in range(users):
        total_a = total_b = 0
        for impression in range(int(rng.integers(1, 4))):
            a = list(rng.permutation(catalogue)[:20])
            b = list(rng.permutation(catalogue)[:20])
            out = team_draft(a, b, 10, f"{user}:{impression}")
            if rng.random() < 0.3:
                continue  # watched nothing from this list
            liked = b if rng.random() < p_b else a
            watched = [liked[int(rng.integers(0, 3))]]  # one of that model's top 3
            got_a, got_b = credit(teams_by_movie(out.movies, out.to_record()), watched)
            total_a, total_b = total_a + got_a, total_b + got_b
        per_user.append((total_a, total_b))
    return per_user


def test_users_who_prefer_b_items_make_b_the_winner() -> None:
    pref = preference(_simulated_users(np.random.default_rng(7), 1500, 0.6))
    assert pref.winner == "B" and pref.p_value < 0.05
    assert 0 < pref.ci_low < pref.delta < pref.ci_high


def test_a_over_a_rejects_at_most_about_alpha_and_p_values_are_spread() -> None:
    rng = np.random.default_rng(11)
    p_values = []
    for _ in range(500):
        # 300 users, 0-3 clicks per side from the same distribution: no true preference.
        clicks = rng.binomial(3, 0.3, size=(300, 2))
        p_values.append(preference(map(tuple, clicks.tolist())).p_value)
    p = np.array(p_values)
    assert np.mean(p < 0.05) <= 0.05 + 0.02  # the exact test is conservative; +0.02 ≈ 2 standard errors
    assert 0.35 < np.mean(p < 0.5) < 0.65  # uniform-ish (discrete, so not exactly 0.5)
    assert np.mean(p < 0.2) < 0.25


def test_users_needed_detects_its_effect_in_about_80_percent_of_runs() -> None:
    p_b, tie_rate = 0.6, 0.2
    n = users_needed_interleaving(p_b, tie_rate)
    assert 150 < n < 400
    rng = np.random.default_rng(3)
    outcomes = [(1, 1), (0, 1), (1, 0)]  # tie, B wins, A wins
    probs = [tie_rate, (1 - tie_rate) * p_b, (1 - tie_rate) * (1 - p_b)]
    runs = 600
    detected = 0
    for _ in range(runs):
        picks = rng.choice(3, size=n, p=probs)
        detected += preference(outcomes[i] for i in picks).winner == "B"
    assert abs(detected / runs - 0.8) < 0.06  # SE ≈ 0.016; tie counts vary run to run, hence room


@pytest.mark.parametrize("p_b", [0.6, 0.35, 0.7])
def test_users_needed_reaches_the_exact_power_of_the_sign_test_the_verdict_uses(p_b: float) -> None:
    n = users_needed_interleaving(p_b, 0.0)
    # Brute force over every outcome count: the power of the same binomtest `preference` runs.
    rejected = [k for k in range(n + 1) if binomtest(k, n, 0.5).pvalue < 0.05]
    assert sum(binom.pmf(k, n, p_b) for k in rejected) >= 0.8


def test_users_needed_grows_with_ties_and_smaller_effects_and_refuses_no_effect() -> None:
    base = users_needed_interleaving(0.6, 0.0)
    assert users_needed_interleaving(0.6, 0.5) == pytest.approx(2 * base, abs=1)
    assert users_needed_interleaving(0.55, 0.0) > 3 * base
    assert users_needed_interleaving(0.4, 0.0) == base  # symmetric: a preference for A is as easy to find
    assert users_needed_interleaving(0.6, 0.0, power=0.9) > base
    for bad in ({"p_prefer_b": 0.5, "tie_rate": 0.0}, {"p_prefer_b": 0.6, "tie_rate": 1.0}):
        with pytest.raises(ValueError):
            users_needed_interleaving(**bad)


def test_preference_is_a_frozen_record() -> None:
    pref = preference([(0, 1)])
    with pytest.raises(AttributeError):
        pref.winner = "A"  # type: ignore[misc]
    assert isinstance(pref, Preference)

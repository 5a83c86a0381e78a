"""A version's files: their names, the two kinds of model directory, and the checks a directory must pass.

A ranker's directory holds `model.txt` (LightGBM text format), `meta.json` (`RankerMeta`) and,
optionally, `candidates/`. A baseline policy's directory holds no model.txt: its meta.json
says `"kind": "baseline"` and names the policy, and its `candidates/` folder (the candidate
index the policy answers from) is required, since the index is all the model there is. A
meta.json without `kind` is a ranker's (every version registered before baselines existed).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Final

from ranking.provenance import file_sha256
from ranking.registry.errors import ModelArtifactError, SmokeTestError

MODEL_ARTIFACT: Final = "model"
"""Run artifact folder of the model files (the version's source)."""
MODEL_FILE: Final = "model.txt"
"""LightGBM text-format model (same name as `ranking.ranker.MODEL_FILE`); a ranker's only."""
META_FILE: Final = "meta.json"
"""Model metadata; its `features` list is a ranker's input width, its `kind` says which kind of model."""
META_FEATURES: Final = "features"
META_KIND: Final = "kind"
"""meta.json key of the model's kind; absent means `KIND_RANKER`."""
META_POLICY: Final = "policy"
"""meta.json key of a baseline's policy name (one of `BASELINE_POLICIES`)."""
PROVENANCE_FILE: Final = "provenance.json"
REPORT_ARTIFACT: Final = "evaluation"
CANDIDATES_DIR: Final = "candidates"
"""Sub-folder of a model: the candidate index it was trained with (plain .npz + JSON); a baseline must have it."""
KIND_RANKER: Final = "ranker"
"""A LightGBM LambdaRank ranker (model.txt + meta.json)."""
KIND_BASELINE: Final = "baseline"
"""A baseline policy answering from its candidate index (meta.json + candidates/, no model.txt)."""
KINDS: Final = (KIND_RANKER, KIND_BASELINE)
BASELINE_POLICIES: Final = ("popularity", "recency_popularity", "item_item", "als")
"""The baseline policies a version may name."""
_BASELINE_NUMBERS: Final = ("default_lambda", "cost_scale", "unknown_cost")
"""meta.json figures serving applies to a baseline's list (the cost penalty): numbers when present."""


def read_meta(model_dir: Path) -> dict[str, Any]:
    """meta.json as a dict; ModelArtifactError when it is missing or not a JSON object."""
    path = model_dir / META_FILE
    if not path.is_file():
        # Without meta.json the kind is unknown: name model.txt too when it is missing (a ranker, by default).
        missing = [name for name in (MODEL_FILE, META_FILE) if not (model_dir / name).is_file()]
        raise ModelArtifactError(f"{model_dir} lacks {', '.join(missing)}")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ModelArtifactError(f"{path} is not a JSON object: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelArtifactError(f"{path} is not a JSON object: {type(meta).__name__}")
    return meta


def kind_of(meta: dict[str, Any], where: Path) -> tuple[str, str | None]:
    """(kind, policy) of a parsed meta.json; ModelArtifactError when the kind or the policy is not a known one."""
    kind = meta.get(META_KIND, KIND_RANKER)
    policy = meta.get(META_POLICY)
    if kind not in KINDS:
        raise ModelArtifactError(f"{where}: '{META_KIND}' is {kind!r}, want one of {', '.join(KINDS)}")
    if kind == KIND_RANKER:
        # A policy here most likely means a baseline whose "kind" was forgotten: do not serve it as a ranker.
        if policy is not None:
            raise ModelArtifactError(f"{where}: a ranker has no '{META_POLICY}' (is '{META_KIND}' missing?)")
        return KIND_RANKER, None
    if policy not in BASELINE_POLICIES:
        raise ModelArtifactError(
            f"{where}: baseline '{META_POLICY}' is {policy!r}, want one of {', '.join(BASELINE_POLICIES)}"
        )
    return KIND_BASELINE, str(policy)


def read_kind(model_dir: Path) -> tuple[str, str | None]:
    """(kind, policy) of a model directory: `("ranker", None)` or `("baseline", "<policy>")`."""
    return kind_of(read_meta(model_dir), model_dir / META_FILE)


def read_features(model_dir: Path) -> list[str]:
    """The feature list of a model directory (empty for a baseline); ModelArtifactError when its files are wrong."""
    meta = read_meta(model_dir)
    kind, _ = kind_of(meta, model_dir / META_FILE)
    features = meta.get(META_FEATURES, [] if kind == KIND_BASELINE else None)
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ModelArtifactError(f"{model_dir / META_FILE} has no '{META_FEATURES}' list of names")
    if kind == KIND_BASELINE:
        if (model_dir / MODEL_FILE).exists():  # a ranker labelled baseline would be served without its trees
            raise ModelArtifactError(f"{model_dir}: a baseline has no {MODEL_FILE}")
        index = model_dir / CANDIDATES_DIR
        if not index.is_dir() or not any(p.is_file() for p in index.rglob("*")):
            raise ModelArtifactError(f"{model_dir}: a baseline needs a non-empty {CANDIDATES_DIR}/ folder")
        return features
    if not (model_dir / MODEL_FILE).is_file():
        raise ModelArtifactError(f"{model_dir} lacks {MODEL_FILE}")
    if not features:
        raise ModelArtifactError(f"{model_dir / META_FILE} has no non-empty '{META_FEATURES}' list of names")
    return features


def model_files(model_dir: Path) -> tuple[str, ...]:
    """The top-level files a version of this directory's kind uploads (exactly these: nothing else rides along)."""
    return (META_FILE,) if read_kind(model_dir)[0] == KIND_BASELINE else (MODEL_FILE, META_FILE)


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over a folder's files (sorted relative names and their contents' hashes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def check_text_model(path: Path) -> None:
    """Check a LightGBM text model's layout (header, `tree_sizes`, tree blocks, end marker) without LightGBM.

    Why: LightGBM 4.7 aborts the whole process (C++ `terminate`) on some malformed files, and
    loads a file cut after a tree boundary silently with fewer trees. The header's `tree_sizes`
    gives each tree block's exact byte length, so truncation and edits inside trees show here.
    """
    data = path.read_bytes()
    if not data.startswith(b"tree\n"):
        raise SmokeTestError(f"{path.name} is not a LightGBM text model (no 'tree' header line)")
    sizes_line = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.MULTILINE)
    first = data.find(b"\nTree=0\n")
    if sizes_line is None or first < 0:
        raise SmokeTestError(f"{path.name} has no tree_sizes header or no Tree=0 block")
    pos = first + 1
    for i, size in enumerate(int(s) for s in sizes_line.group(1).split()):
        if not data.startswith(f"Tree={i}\n".encode(), pos):
            raise SmokeTestError(
                f"{path.name}: tree {i} is not where tree_sizes puts it (file edited or cut)"
            )
        pos += size
    if not data.startswith(b"end of trees", pos):
        raise SmokeTestError(f"{path.name}: no 'end of trees' after the last tree (file cut short)")


def _check_baseline_meta(model_dir: Path) -> None:
    meta = read_meta(model_dir)
    for key in _BASELINE_NUMBERS:
        value = meta.get(key)
        ok = value is None or (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
        if not ok:
            raise SmokeTestError(f"{META_FILE}: '{key}' is {value!r}, want a finite number or null")


def smoke_test(model_dir: Path) -> None:
    """Check a model directory loads: a ranker's trees predict finite scores, a baseline's meta and index are there."""
    try:
        width = len(read_features(model_dir))
        kind, _ = read_kind(model_dir)
    except ModelArtifactError as exc:
        raise SmokeTestError(str(exc)) from exc
    if kind == KIND_BASELINE:
        _check_baseline_meta(model_dir)
        return
    check_text_model(model_dir / MODEL_FILE)
    import lightgbm as lgb
    import numpy as np

    try:
        booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    except Exception as exc:  # LightGBMError, or ValueError on a mangled header
        raise SmokeTestError(f"{MODEL_FILE} does not load as a LightGBM text model: {exc}") from exc
    if booster.num_feature() != width:
        raise SmokeTestError(
            f"{MODEL_FILE} expects {booster.num_feature()} features, {META_FILE} lists {width}"
        )
    scores = np.asarray(booster.predict(np.zeros((4, width)), num_threads=1), dtype=np.float64)
    if scores.shape != (4,) or not np.isfinite(scores).all():
        raise SmokeTestError(f"predicting on zeros gave {scores!r}, want 4 finite scores")

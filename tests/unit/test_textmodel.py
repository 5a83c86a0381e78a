"""The sentence encoder: ONNX MiniLM shape, determinism and meaning; offline loading; TF-IDF fallback."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from textmodel import metrics
from textmodel.encoder import (
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelUnavailableError,
    OnnxMiniLM,
    TextEncoder,
    locate,
)
from textmodel.settings import TextSettings
from textmodel.tfidf import TfidfEncoder, features, load_encoder, words


def _settings(tmp_path: Path, **kw: Any) -> TextSettings:
    return TextSettings(var_dir=tmp_path, **{"encoder": "auto", **kw})


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLM:
    return OnnxMiniLM(TextSettings(encoder="onnx", max_tokens=256, threads=1, model_dir=None))


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("recsys_text_encoder_fallback_total", {"reason": reason}) or 0.0


def _degraded() -> float | None:
    return REGISTRY.get_sample_value("recsys_text_encoder_degraded")


# --- ONNX MiniLM ------------------------------------------------------------------------------

TEXTS = [
    "I love scary horror movies with ghosts and haunted houses.",
    "Frightening films about haunted mansions are my favourite.",
    "Romantic comedies set in Paris make me happy.",
    "",
    "Star Wars",
]


def test_minilm_vectors_are_384_wide_unit_float32_and_deterministic(minilm: OnnxMiniLM) -> None:
    assert isinstance(minilm, TextEncoder)
    a = minilm.encode(TEXTS)
    assert a.shape == (len(TEXTS), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, minilm.encode(TEXTS)), "same process, same bits"
    other = OnnxMiniLM(TextSettings(encoder="onnx", model_dir=None))
    assert np.array_equal(a, other.encode(TEXTS)), "another session, same bits"
    assert minilm.encode([]).shape == (0, 384)


def test_batching_and_padding_do_not_change_a_vector(minilm: OnnxMiniLM) -> None:
    # Mean pooling must ignore padding: a text alone and in a batch with longer ones agree.
    batch = minilm.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(minilm.encode([text])[0], batch[i], atol=2e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(minilm: OnnxMiniLM) -> None:
    horror, haunted, romance = minilm.encode(TEXTS[:3])
    assert horror @ haunted > 0.6
    assert horror @ haunted > horror @ romance + 0.3
    space, scifi, cooking = minilm.encode([
        "Epic space battles between starships", "science fiction war among the stars", "a baking show about cakes"
    ])  # fmt: skip
    assert space @ scifi > space @ cooking + 0.2


def test_long_texts_are_truncated_at_max_tokens(tmp_path: Path) -> None:
    short = OnnxMiniLM(_settings(tmp_path, max_tokens=16))
    head = "A thriller about a detective hunting a serial killer in a rainy city"
    tail = " and then a long list of unrelated words about cooking pasta" * 40
    v = short.encode([head + tail, head])
    # Only the first 16 word pieces count, so the long tail changes the vector very little.
    assert v[0] @ v[1] > 0.9
    assert np.isclose(np.linalg.norm(v[0]), 1.0, atol=1e-5)


def test_loading_and_encoding_never_touch_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    encoder = load_encoder(_settings(tmp_path, encoder="onnx"))
    assert encoder.model_id == "all-MiniLM-L6-v2-onnx-int8" and encoder.dim == 384
    assert encoder.encode(["a quiet film about a lighthouse keeper"]).shape == (1, 384)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_pytorch_is_not_installed() -> None:
    # The tokenizer's package declares sentence-transformers (and so torch); it is installed --no-deps.
    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("sentence_transformers") is None


def test_model_files_from_a_folder_are_accepted_with_the_pinned_hashes(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for pinned in (MODEL_FILE, TOKENIZER_FILE):
        (folder / pinned.name).symlink_to(locate(pinned))
    encoder = load_encoder(_settings(tmp_path, model_dir=folder))
    assert isinstance(encoder, OnnxMiniLM)
    assert _degraded() == 0


# --- degraded mode ----------------------------------------------------------------------------


def test_missing_model_degrades_to_tfidf_with_a_log_line_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = _fallbacks("missing")
    with caplog.at_level(logging.WARNING, logger="textmodel.tfidf"):
        encoder = load_encoder(_settings(tmp_path, model_dir=tmp_path / "no-such-folder", tfidf_dim=512))
    assert isinstance(encoder, TfidfEncoder) and encoder.dim == 512
    assert _degraded() == 1
    assert _fallbacks("missing") == before + 1
    assert any(r.levelno == logging.WARNING and "DEGRADED" in r.getMessage() for r in caplog.records)
    assert encoder.encode(["ghost story"]).shape == (1, 512)


def test_a_tampered_model_file_fails_its_hash_check_and_degrades(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(locate(TOKENIZER_FILE), folder / TOKENIZER_FILE.name)
    (folder / MODEL_FILE.name).write_bytes(b"not the pinned model")
    before = _fallbacks("hash_mismatch")
    with caplog.at_level(logging.WARNING, logger="textmodel.tfidf"):
        encoder = load_encoder(_settings(tmp_path, model_dir=folder))
    assert isinstance(encoder, TfidfEncoder)
    assert _fallbacks("hash_mismatch") == before + 1 and _degraded() == 1
    assert "sha256" in caplog.text
    # Recovery: a later load that finds the model clears the gauge.
    load_encoder(_settings(tmp_path))
    assert _degraded() == 0


def test_strict_onnx_choice_raises_instead_of_degrading(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_encoder(_settings(tmp_path, encoder="onnx", model_dir=tmp_path / "missing"))
    assert err.value.reason == "missing"


def test_chosen_tfidf_is_not_reported_as_degraded(tmp_path: Path) -> None:
    metrics.DEGRADED.set(1)
    encoder = load_encoder(_settings(tmp_path, encoder="tfidf"))
    assert isinstance(encoder, TfidfEncoder) and _degraded() == 0


# --- TF-IDF -----------------------------------------------------------------------------------


def test_tokens_fold_case_accents_and_punctuation() -> None:
    assert words("Amélie's CAFÉ, Paris!") == ["amelie", "s", "cafe", "paris"]
    f = features("dark knight", char_ngrams=True)
    assert f["w:dark"] == 1 and f["b:dark knight"] == 1 and f["c:<da"] == 1
    assert not any(k.startswith("c:") for k in features("dark knight", char_ngrams=False))


def test_tfidf_is_deterministic_unit_length_and_matches_words() -> None:
    texts = ["Horror movie about ghosts", "ghosts and horror", "romantic comedy in Paris", "!!!"]
    a, b = TfidfEncoder(256), TfidfEncoder(256)
    va = a.encode(texts)
    assert va.shape == (4, 256) and va.dtype == np.float32
    assert np.array_equal(va, b.encode(texts)) and a.model_id == b.model_id == "tfidf-h256-c3"
    np.testing.assert_allclose(np.linalg.norm(va[:3], axis=1), 1.0, atol=1e-6)
    assert not va[3].any(), "a text without words is the zero vector"
    assert va[0] @ va[1] > va[0] @ va[2] + 0.3
    # Character 3-grams let a plural meet its singular.
    plural, singular = a.encode(["avengers", "avenger"])
    assert plural @ singular > 0.3


def test_fitting_idf_changes_the_model_id_and_downweights_common_words() -> None:
    docs = [f"the movie number {i} drama" for i in range(50)] + ["haunted lighthouse horror"]
    base = TfidfEncoder(1024, char_ngrams=False)
    fitted = base.fit(docs)
    assert fitted.model_id.startswith("tfidf-h1024-idf") and fitted.model_id != base.model_id
    assert fitted.model_id == base.fit(docs).model_id, "the same corpus gives the same id"

    def margin(encoder: TfidfEncoder) -> float:
        # How much more the query meets the horror movie (rare word) than a drama (common "the").
        q, drama, horror = encoder.encode(["the horror", docs[0], docs[-1]])
        return float(q @ horror - q @ drama)

    assert margin(fitted) > margin(base) + 0.1
    with pytest.raises(ValueError, match="shape"):
        TfidfEncoder(8, idf=np.ones(4, dtype=np.float32))

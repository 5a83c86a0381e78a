"""Text model knobs (env prefix `RECSYS_TEXT_`): which encoder, token limit, threads, where the files are."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings

EncoderChoice = Literal["auto", "onnx", "tfidf"]
"""auto: the ONNX model, TF-IDF when it cannot be loaded; onnx: the model or an error; tfidf: always TF-IDF."""


class TextSettings(PlatformSettings):
    """How the sentence encoder is chosen and run, and where movie vectors are cached."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_TEXT_")

    encoder: EncoderChoice = Field(
        "auto",
        description="Sentence encoder: auto (ONNX MiniLM, TF-IDF when the model is missing: degraded), "
        "onnx (the model or fail), tfidf (always the fallback).",
    )
    max_tokens: int = Field(
        256, ge=8, le=512, description="Word pieces per text the ONNX encoder keeps (longer texts are cut)."
    )
    threads: int = Field(
        1,
        ge=1,
        description="ONNX Runtime intra-op threads per process (more oversubscribe the cores the service shares).",
    )
    batch_size: int = Field(
        32, ge=1, description="Texts per ONNX Runtime call when embedding many (8 to 128 cost the same here)."
    )
    vector_cache_keep: int = Field(
        3, ge=1, description="Cached movie-vector files kept per model id (older catalogues are deleted)."
    )
    model_dir: Path | None = Field(
        None,
        description="Folder holding model.onnx and tokenizer.json instead of the installed packages' files "
        "(same pinned hashes; unset: the packages).",
    )
    tfidf_dim: int = Field(
        1024, ge=16, description="Hashed feature dimensions of the TF-IDF fallback encoder's vectors."
    )

    @property
    def root(self) -> Path:
        """Everything the text model writes: var/textmodel."""
        return self.var_dir / "textmodel"


@lru_cache(maxsize=1)
def get_text_settings() -> TextSettings:
    """The process-wide text model settings, read from the environment once."""
    return TextSettings()

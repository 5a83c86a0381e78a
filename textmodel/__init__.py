"""The offline sentence encoder (ONNX Runtime + tokenizers, TF-IDF fallback) and movie vectors.

Depends on nothing of ours but `core/`. Entry points: `load_encoder` (textmodel.tfidf) picks the
encoder, `movie_vectors` / `load_movie_vectors` (textmodel.movies) embed and cache the catalogue.
"""

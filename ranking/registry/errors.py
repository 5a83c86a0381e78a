"""The registry's errors: one hierarchy under `RegistryError`, each error knowing the HTTP status an admin route answers with."""

from __future__ import annotations

from core.errors import RecsysError


class RegistryError(RecsysError):
    """Base of registry errors; `http_status` is what an admin route answers with."""

    http_status = 500


class RegistryUnavailableError(RegistryError):
    """The tracking backend failed or could not be reached."""

    http_status = 503


class VersionNotFoundError(RegistryError):
    """No such registered model, version or alias."""

    http_status = 404


class ModelArtifactError(RegistryError):
    """A model directory or downloaded version lacks its files or holds invalid ones."""

    http_status = 422


class SmokeTestError(ModelArtifactError):
    """The model files do not load or do not predict finite scores."""


class AliasConflictError(RegistryError):
    """An alias move that would make no sense (the champion as its own challenger)."""

    http_status = 409


class RollbackError(RegistryError):
    """There is no earlier champion to go back to."""

    http_status = 409

"""The platform's error base: every error that can reach an HTTP answer knows its status.

Each package keeps its own errors (`ranking.registry.RegistryError`, `serving.provenance_record.
ProvenanceError`, `serving.experiments.ExperimentFileError`, `serving.api.errors.ApiError`) under
this one base, so the API maps them all in one exception handler and routes only raise.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base of the platform's errors: `http_status` is what a route answers when one escapes it."""

    http_status: int = 500

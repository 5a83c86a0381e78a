"""The simulated metadata API (`GET /user/<ids>`, `GET /movie/<ids>`), like the course's, with fault injection."""

from simulator.api.app import create_app

__all__ = ["create_app"]

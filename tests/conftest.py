"""Test-wide settings: keep thread pools at one thread and whylogs quiet, as the services do."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")

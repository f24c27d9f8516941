import os

import pytest

# Tests are CPU-only and share 2 cores; keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Spinning OpenMP workers make CPU tests several times slower when cores are shared (CI, parallel jobs).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from aegir.paths import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent (real-data tests need the shared benchmark sample)")
    return d

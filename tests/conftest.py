"""Suite-wide settings: hypothesis runs without deadlines (a loaded 2-core CI box must not
turn a slow example into a failure) and, in CI, derandomized so a run is reproducible; local
runs keep exploring new inputs."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

settings.register_profile("renderkit", deadline=None, print_blob=True)
settings.register_profile("renderkit-ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile(
    "renderkit-ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "renderkit"
)


# -- real Redis topologies (tests/_redis_topology.py), started once per test session --------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 3-primary, 3-replica Redis Cluster on free ports, stopped by pid at the end."""
    from _redis_topology import redis_cluster as start

    with start(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_sentinel(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh primary, replica and three sentinels per test (failover tests kill the primary)."""
    from _redis_topology import redis_sentinel as start

    with start(tmp_path / "sentinel") as sentinel_set:
        yield sentinel_set

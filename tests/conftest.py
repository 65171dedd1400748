"""Suite-wide settings: hypothesis runs without deadlines (a loaded 2-core CI box must not
turn a slow example into a failure) and, in CI, derandomized so a run is reproducible; local
runs keep exploring new inputs."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("renderkit", deadline=None, print_blob=True)
settings.register_profile("renderkit-ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile(
    "renderkit-ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "renderkit"
)

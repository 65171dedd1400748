"""Build hook: write the sync twins (tools/twins.py) for every wheel, sdist and editable install.

The generated ``*_sync.py`` files are not kept in git (their async sources are); a build or
``pip install -e .`` writes them, and ``nox -s twins`` rewrites them after an edit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class TwinsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "twins"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        script = Path(self.root) / "tools" / "twins.py"
        if not script.exists():  # building from an sdist, which already holds the twins
            return
        spec = importlib.util.spec_from_file_location("renderkit_twins", script)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if module.main([]) != 0:
            raise RuntimeError("tools/twins.py could not generate the sync twins")

"""The demo page in a real browser (Debian's chromium): its nonce'd script runs, an injected
script without the nonce is blocked by the CSP."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from _uvicorn_server import serve
from renderkit.testing import require_services

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)

# The demo app as `uvicorn examples.fastapi_app:app` serves it, plus one route rendering the
# same page with a script an attacker managed to inject (no nonce).
APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})

from fastapi import Request
from fastapi.responses import HTMLResponse

from examples.fastapi_app import PAGE, create_app

app = create_app({{}}, logs=False)


@app.get("/injected", response_class=HTMLResponse)
async def injected(request: Request) -> HTMLResponse:
    evil = "<script>document.getElementById('csp').textContent = 'INJECTED SCRIPT RAN';</script>"
    page = PAGE.replace("__NONCE__", request.state.csp_nonce).replace("</body>", evil + "</body>")
    return HTMLResponse(page)
"""


def dump_dom(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", "--dump-dom", url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    return result.stdout + "\n<!-- stderr: " + result.stderr[-1500:] + " -->"


@pytest.mark.e2e
@pytest.mark.browser
def test_demo_page_nonce_runs_and_injected_script_is_blocked(tmp_path: Path) -> None:
    """Chromium runs the page's own script and blocks the injected one."""
    if CHROMIUM is None:
        if require_services():
            pytest.fail("chromium is not installed (CI=true: the browser test must not skip)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with serve(APP, tmp_path, module="demo_browser_app") as base:
        home = dump_dom(f"{base}/", tmp_path / "profile-home")
        attacked = dump_dom(f"{base}/injected", tmp_path / "profile-injected")
    assert "Inline script: ran (its nonce matched the CSP)" in home, home
    assert "INJECTED SCRIPT RAN" not in attacked.split("<!-- stderr:")[0].replace(
        "textContent = 'INJECTED SCRIPT RAN'", ""
    ), attacked
    assert "Inline script: ran (its nonce matched the CSP)" in attacked, attacked

"""Developer sessions: tests, lint, typecheck, docs, demo, bench (``nox -l`` lists them)."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

PYTHON = "3.11"
DEV = ".[all,dev]"
RUFF = "ruff==0.17.6"  # the same pin as pyproject.toml: the twins must format alike
LINTED = ("src", "tests", "benchmarks", "examples", "tools", "hatch_build.py")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (integration tests need RENDERKIT_TEST_*_URL, see README)."""
    session.install("-e", DEV)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def isolation(session: nox.Session) -> None:
    """Import every module with only the core dependencies installed (no extras)."""
    session.install("-e", ".")
    session.install("pytest", "pytest-asyncio")
    session.run("pytest", "tests/test_import_isolation.py", "-p", "no:cacheprovider")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(RUFF)
    session.run("ruff", "check", *LINTED, "noxfile.py")
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def twins(session: nox.Session) -> None:
    """Regenerate the sync twins from their async sources (``-- --check`` only compares)."""
    session.install(RUFF)
    session.run("python", "tools/twins.py", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/, then on what users copy: examples/, tests/typing/, docs blocks."""
    session.install("-e", DEV)
    session.run("mypy")
    session.run("python", "tools/typecheck_usage.py")


@nox.session(python=PYTHON)
def wheel(session: nox.Session) -> None:
    """Build the wheel and sdist, twine-check both, install the wheel (not editable) into a
    fresh venv and run the suite against it (``-- -x`` and other pytest options pass on)."""
    import glob
    import shutil

    dist = os.path.abspath(os.path.join(session.create_tmp(), "dist"))
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build>=1.2", "twine>=5")
    session.run("python", "-m", "build", "--outdir", dist)
    session.run("twine", "check", "--strict", *sorted(glob.glob(os.path.join(dist, "*"))))
    (built,) = glob.glob(os.path.join(dist, "*.whl"))
    session.run("pip", "uninstall", "-y", "-q", "renderkit", silent=True, success_codes=[0, 1])
    session.install(f"renderkit[all,dev] @ file://{built}")
    # The suite must import the installed wheel, never the checkout's src/.
    session.run(
        "python", "-c", "import renderkit, sys; f = renderkit.__file__; "
        "sys.exit(0 if 'site-packages' in f else f'renderkit imported from {f}, not the wheel')",
    )  # fmt: skip
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (warnings are errors)."""
    session.install("-e", DEV)
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", os.path.join(session.create_tmp(), "site")
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the example FastAPI app with memory backends and zero configuration."""
    session.install("-e", DEV)
    port = os.environ.get("PORT", "8000")
    session.log(f"renderkit demo: open http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    session.run(
        "uvicorn",
        "examples.fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        env={"APP_ENV": os.environ.get("APP_ENV", "development")},
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmark in benchmarks/ and write docs/benchmarks.md."""
    session.install("-e", ".[all,dev,bench]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """Serve the chaos app (2 workers) under load while Redis and Postgres fail; print figures.

    Starts its own redis-server and Postgres on free ports; ``nox -s chaos -- --duration 60``.
    """
    session.install("-e", DEV)
    session.run("python", "benchmarks/chaos.py", *session.posargs)

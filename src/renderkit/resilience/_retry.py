"""Retry presets on tenacity: bounded, full-jitter exponential backoff, the original error kept.

Delays follow "full jitter": attempt ``n`` sleeps a random time between 0 and
``min(max_delay, initial * 2 ** (n - 1))``, so the caps run 1, 2, 4, 8, 16 s by default and a
fleet of instances retrying at once spreads out instead of stampeding. Every preset is bounded
(``attempts`` and optionally ``deadline``) and re-raises the last real exception, never
tenacity's ``RetryError``. HTTP responses answering 429 or 503 with ``Retry-After`` are waited
on for as long as the server asked (up to ``max_retry_after``).

One policy builder feeds both ``tenacity.Retrying`` and ``tenacity.AsyncRetrying``; the
:func:`retry` decorator picks the right one for sync and async functions.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, cast, overload

if TYPE_CHECKING:
    import tenacity

# No __all__ here: renderkit.resilience lists the public names once.

F = TypeVar("F", bound=Callable[..., Any])

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
"""What :func:`retry` retries by default: refused/reset connections and timeouts."""
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
"""HTTP statuses :func:`http_retry` retries."""

logger = logging.getLogger("renderkit.resilience")


def full_jitter(attempt: int, *, initial: float = 1.0, max_delay: float = 16.0) -> float:
    """A random delay in ``[0, min(max_delay, initial * 2 ** (attempt - 1))]`` (attempt >= 1)."""
    ceiling = min(max_delay, initial * 2 ** max(attempt - 1, 0))
    return random.uniform(0.0, ceiling)


def retry_after_seconds(response: Any, *, now: datetime | None = None) -> float | None:
    """Seconds a 429/503 response asks the client to wait (``Retry-After``: seconds or an HTTP
    date), else None. Accepts an httpx ``Response`` or anything with ``status_code``/``headers``;
    malformed or negative values give None."""
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None)
    if status not in (429, 503) or headers is None:
        return None
    try:
        raw = headers.get("retry-after")
    except Exception:  # an odd headers object: treat as no header
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        return None
    value = raw.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(delta, 0.0)


def _response_of(outcome: Any) -> Any:
    """The HTTP response an attempt produced: its result, or an exception's ``.response``."""
    if outcome is None:
        return None
    if outcome.failed:
        return getattr(outcome.exception(), "response", None)
    return outcome.result()


class _Wait:
    """Full jitter, unless the last response named its own ``Retry-After``."""

    def __init__(self, initial: float, max_delay: float, max_retry_after: float) -> None:
        self.initial = initial
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = retry_after_seconds(_response_of(retry_state.outcome))
        if asked is not None:
            return min(asked, self.max_retry_after)
        return full_jitter(
            retry_state.attempt_number, initial=self.initial, max_delay=self.max_delay
        )


def _log_before_sleep(name: str) -> Callable[[tenacity.RetryCallState], None]:
    def log(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            error = outcome.exception()
            what = f"{type(error).__name__}: {error}"[:200]
        else:
            what = f"status {getattr(outcome.result() if outcome else None, 'status_code', '?')}"
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs", name, state.attempt_number, what, delay
        )

    return log


def _check(attempts: int, initial: float, max_delay: float, deadline: float | None) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"retry(attempts={attempts!r}): use an int >= 1 (retries are bounded)")
    for label, value in (("initial", initial), ("max_delay", max_delay)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"retry({label}={value!r}): use a number of seconds >= 0")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0
    ):
        raise ValueError(f"retry(deadline={deadline!r}): use a number of seconds > 0, or None")


class BackoffOptions(TypedDict, total=False):
    """Options every preset takes (defaults in parentheses).

    ``attempts`` (5; 4 for :func:`http_retry`): total tries, at least 1. ``initial`` (1.0) and
    ``max_delay`` (16.0): the full-jitter caps in seconds. ``deadline`` (None): total seconds
    across attempts. ``max_retry_after`` (60.0): the longest ``Retry-After`` honoured.
    ``sleep``: a replacement for ``time.sleep`` / ``asyncio.sleep`` (tests).
    """

    attempts: int
    initial: float
    max_delay: float
    deadline: float | None
    max_retry_after: float
    sleep: Callable[[float], Any] | None


class RetryOptions(BackoffOptions, total=False):
    """:class:`BackoffOptions` plus what to retry.

    ``on`` (``TRANSIENT_ERRORS``): exception types to retry; ``retry_if``: a further predicate
    on the exception; ``retry_if_result``: retry when a returned value matches (the last one is
    returned when attempts run out); ``name``: the label in the retry log line.
    """

    on: tuple[type[BaseException], ...]
    retry_if: Callable[[BaseException], bool] | None
    retry_if_result: Callable[[Any], bool] | None
    name: str


_DEFAULTS: RetryOptions = {
    "attempts": 5,
    "initial": 1.0,
    "max_delay": 16.0,
    "deadline": None,
    "max_retry_after": 60.0,
    "sleep": None,
    "on": TRANSIENT_ERRORS,
    "retry_if": None,
    "retry_if_result": None,
    "name": "retry",
}


def _options(caller: str, given: RetryOptions) -> RetryOptions:
    """Fill defaults, refuse unknown keywords (callers that skip type checking) and bad values."""
    unknown = sorted(set(given) - set(_DEFAULTS))
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"it takes {', '.join(_DEFAULTS)}"
        )
    options: RetryOptions = {**_DEFAULTS, **given}
    _check(options["attempts"], options["initial"], options["max_delay"], options["deadline"])
    return options


def _policy(options: RetryOptions) -> dict[str, Any]:
    """The tenacity keyword arguments shared by the sync and async retrying objects."""
    import tenacity

    on, retry_if = options["on"], options["retry_if"]
    retry_if_result, deadline = options["retry_if_result"], options["deadline"]
    stop: Any = tenacity.stop_after_attempt(options["attempts"])
    if deadline is not None:
        stop = stop | tenacity.stop_after_delay(deadline)

    def retry_on_exception(error: BaseException) -> bool:
        return isinstance(error, on) and (retry_if is None or bool(retry_if(error)))

    condition: Any = tenacity.retry_if_exception(retry_on_exception)
    kwargs: dict[str, Any] = {}
    if retry_if_result is not None:
        condition = condition | tenacity.retry_if_result(retry_if_result)
        # When the attempts run out on a bad *result*, hand back that result (a 503 response)
        # instead of tenacity's RetryError: the caller inspects it like any other response.
        kwargs["retry_error_callback"] = lambda state: state.outcome.result()
    kwargs.update(
        stop=stop,
        wait=_Wait(options["initial"], options["max_delay"], options["max_retry_after"]),
        retry=condition,
        reraise=True,
        before_sleep=_log_before_sleep(options["name"]),
    )
    if options["sleep"] is not None:
        kwargs["sleep"] = options["sleep"]
    return kwargs


def retrying(**options: Unpack[RetryOptions]) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` with renderkit's preset: ``for attempt in retrying(): with
    attempt: ...``. Options: :class:`RetryOptions`."""
    import tenacity

    return tenacity.Retrying(**_policy(_options("retrying", options)))


def async_retrying(**options: Unpack[RetryOptions]) -> tenacity.AsyncRetrying:
    """The async twin of :func:`retrying`: ``async for attempt in async_retrying(): ...``."""
    import tenacity

    return tenacity.AsyncRetrying(**_policy(_options("async_retrying", options)))


@overload
def retry(fn: F, **options: Unpack[RetryOptions]) -> F: ...


@overload
def retry(fn: None = None, **options: Unpack[RetryOptions]) -> Callable[[F], F]: ...


def retry(fn: F | None = None, **options: Unpack[RetryOptions]) -> F | Callable[[F], F]:
    """Decorate a sync or async function to retry transient failures with the preset.

    ``@retry`` or ``@retry(attempts=3, on=(ConnectionError,))``. Only retry work that is
    idempotent or was never sent. Options: :class:`RetryOptions` (``name`` defaults to the
    function's qualified name).
    """
    import tenacity

    checked = _options("retry", options)
    named = "name" in options

    def decorate(func: F) -> F:
        policy = checked.copy()
        if not named:
            policy["name"] = getattr(func, "__qualname__", "retry")
        return tenacity.retry(**_policy(policy))(func)  # type: ignore[no-any-return]

    if fn is not None:
        return decorate(fn)
    return decorate


def _retryable_response(response: Any) -> bool:
    return getattr(response, "status_code", None) in RETRYABLE_STATUS


def _http_errors() -> tuple[type[BaseException], ...]:
    try:
        import httpx
    except ImportError:
        return TRANSIENT_ERRORS
    return (*TRANSIENT_ERRORS, httpx.TransportError, httpx.HTTPStatusError)


def _retryable_http_error(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    if response is not None and getattr(error, "request", None) is not None:
        # httpx.HTTPStatusError from raise_for_status(): only some statuses are worth retrying.
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status in RETRYABLE_STATUS
    return True


@overload
def http_retry(fn: F, **options: Unpack[BackoffOptions]) -> F: ...


@overload
def http_retry(fn: None = None, **options: Unpack[BackoffOptions]) -> Callable[[F], F]: ...


def http_retry(fn: F | None = None, **options: Unpack[BackoffOptions]) -> F | Callable[[F], F]:
    """Decorate an httpx call (sync or async) to retry transport errors and 429/502/503/504.

    Works whether the function returns the response or calls ``raise_for_status()``; a 429 or
    503 with ``Retry-After`` waits as asked (capped at ``max_retry_after``). When attempts run
    out, the last response is returned (or the last error re-raised). Options:
    :class:`BackoffOptions` (``attempts`` defaults to 4 here).
    """
    unknown = sorted(set(options) - set(BackoffOptions.__annotations__))
    if unknown:
        raise TypeError(f"http_retry() got unexpected keyword argument(s) {', '.join(unknown)}")
    retry_options: RetryOptions = {
        "attempts": 4,
        "on": _http_errors(),
        "retry_if": _retryable_http_error,
        "retry_if_result": _retryable_response,
    }
    retry_options.update(cast(RetryOptions, options))  # a BackoffOptions is a RetryOptions subset
    decorate: Callable[[F], F] = retry(**retry_options)
    return decorate(fn) if fn is not None else decorate

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
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    import tenacity

__all__ = [
    "RETRYABLE_STATUS",
    "TRANSIENT_ERRORS",
    "async_retrying",
    "full_jitter",
    "http_retry",
    "retry",
    "retry_after_seconds",
    "retrying",
]

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


def _policy(
    *,
    attempts: int,
    initial: float,
    max_delay: float,
    deadline: float | None,
    on: tuple[type[BaseException], ...],
    retry_if: Callable[[BaseException], bool] | None,
    retry_if_result: Callable[[Any], bool] | None,
    max_retry_after: float,
    name: str,
    sleep: Callable[[float], Any] | None,
) -> dict[str, Any]:
    """The tenacity keyword arguments shared by the sync and async retrying objects."""
    import tenacity

    _check(attempts, initial, max_delay, deadline)
    stop: Any = tenacity.stop_after_attempt(attempts)
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
        wait=_Wait(initial, max_delay, max_retry_after),
        retry=condition,
        reraise=True,
        before_sleep=_log_before_sleep(name),
    )
    if sleep is not None:
        kwargs["sleep"] = sleep
    return kwargs


def retrying(
    *,
    attempts: int = 5,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_if_result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    name: str = "retry",
    sleep: Callable[[float], Any] | None = None,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` with renderkit's preset: ``for attempt in retrying(): with
    attempt: ...``. ``on``: exception types to retry; ``retry_if``: a further predicate on the
    exception; ``retry_if_result``: retry when a returned value matches (the last one is
    returned when attempts run out). ``deadline``: total seconds across attempts."""
    import tenacity

    return tenacity.Retrying(
        **_policy(
            attempts=attempts,
            initial=initial,
            max_delay=max_delay,
            deadline=deadline,
            on=on,
            retry_if=retry_if,
            retry_if_result=retry_if_result,
            max_retry_after=max_retry_after,
            name=name,
            sleep=sleep,
        )
    )


def async_retrying(
    *,
    attempts: int = 5,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_if_result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    name: str = "retry",
    sleep: Callable[[float], Any] | None = None,
) -> tenacity.AsyncRetrying:
    """The async twin of :func:`retrying`: ``async for attempt in async_retrying(): ...``."""
    import tenacity

    return tenacity.AsyncRetrying(
        **_policy(
            attempts=attempts,
            initial=initial,
            max_delay=max_delay,
            deadline=deadline,
            on=on,
            retry_if=retry_if,
            retry_if_result=retry_if_result,
            max_retry_after=max_retry_after,
            name=name,
            sleep=sleep,
        )
    )


@overload
def retry(
    fn: F,
    *,
    attempts: int = 5,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_if_result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> F: ...


@overload
def retry(
    fn: None = None,
    *,
    attempts: int = 5,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_if_result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> Callable[[F], F]: ...


def retry(
    fn: F | None = None,
    *,
    attempts: int = 5,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_if_result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> F | Callable[[F], F]:
    """Decorate a sync or async function to retry transient failures with the preset.

    ``@retry`` or ``@retry(attempts=3, on=(ConnectionError,))``. Only retry work that is
    idempotent or was never sent. Options as in :func:`retrying`.
    """
    import tenacity

    options: dict[str, Any] = {
        "attempts": attempts,
        "initial": initial,
        "max_delay": max_delay,
        "deadline": deadline,
        "on": on,
        "retry_if": retry_if,
        "retry_if_result": retry_if_result,
        "max_retry_after": max_retry_after,
        "sleep": sleep,
    }
    _check(attempts, initial, max_delay, deadline)

    def decorate(func: F) -> F:
        name = getattr(func, "__qualname__", "retry")
        return tenacity.retry(**_policy(name=name, **options))(func)  # type: ignore[no-any-return]

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
def http_retry(
    fn: F,
    *,
    attempts: int = 4,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> F: ...


@overload
def http_retry(
    fn: None = None,
    *,
    attempts: int = 4,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> Callable[[F], F]: ...


def http_retry(
    fn: F | None = None,
    *,
    attempts: int = 4,
    initial: float = 1.0,
    max_delay: float = 16.0,
    deadline: float | None = None,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], Any] | None = None,
) -> F | Callable[[F], F]:
    """Decorate an httpx call (sync or async) to retry transport errors and 429/502/503/504.

    Works whether the function returns the response or calls ``raise_for_status()``; a 429 or
    503 with ``Retry-After`` waits as asked (capped at ``max_retry_after``). When attempts run
    out, the last response is returned (or the last error re-raised).
    """
    return retry(
        fn,
        attempts=attempts,
        initial=initial,
        max_delay=max_delay,
        deadline=deadline,
        on=_http_errors(),
        retry_if=_retryable_http_error,
        retry_if_result=_retryable_response,
        max_retry_after=max_retry_after,
        sleep=sleep,
    )

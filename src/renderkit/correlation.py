"""Request correlation ids: accept a valid incoming id or make one, echo it, log it, pass it on.

::

    from renderkit.correlation import CorrelationIdMiddleware, get_correlation_id

    app.add_middleware(CorrelationIdMiddleware)          # header X-Request-ID
    logger.info("charged card", extra={"order": 42})     # the filter adds correlation_id

The decision (which incoming header wins, whether its value is acceptable, what to generate)
lives in :class:`CorrelationId`, a frozen policy shared by the ASGI middleware here and the WSGI
middleware in :mod:`renderkit.wsgi`. The id is held in a ContextVar, so concurrent asyncio tasks
and WSGI threads never see each other's id.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from renderkit._asgi import (
    Message,
    Receive,
    Scope,
    Send,
    answers_errors_itself,
    send_error_response,
)
from renderkit._context import correlation_id_var, note_failed_request
from renderkit.logging import add_correlation_id

if TYPE_CHECKING:
    import httpx

    from renderkit._asgi import ASGIApp

__all__ = [
    "CELERY_HEADER",
    "REJECTED_MESSAGE",
    "CeleryTracingFilter",
    "CorrelationId",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "CorrelationOptions",
    "add_correlation_id",
    "async_httpx_hook",
    "celery_current_id_var",
    "celery_parent_id_var",
    "connect_celery",
    "get_correlation_id",
    "httpx_hook",
    "is_valid_request_id",
    "outgoing_headers",
]

logger = logging.getLogger("renderkit.correlation")

DEFAULT_MAX_LENGTH = 128
CELERY_HEADER = "CORRELATION_ID"
"""The Celery task header that carries the id from the request to the worker."""

REJECTED_MESSAGE = "Generated new request ID (%s): the incoming %s header failed validation"
"""The DEBUG line logged (on ``renderkit.correlation``) when an incoming id is refused."""

# RFC 9110 token characters plus ``/ : = @`` (base64 ids, URNs, host-prefixed ids). No space,
# quote, comma, semicolon, control or non-ASCII character can pass, so an accepted id is safe to
# echo in a header and to write to a log line as is.
_ID_CHARS = r"A-Za-z0-9!#$%&'*+\-.^_`|~/:=@"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def _charset_pattern(max_length: int) -> re.Pattern[str]:
    return re.compile(f"[{_ID_CHARS}]{{1,{max_length}}}")


_DEFAULT_PATTERN = _charset_pattern(DEFAULT_MAX_LENGTH)


def is_valid_request_id(value: str, max_length: int = DEFAULT_MAX_LENGTH) -> bool:
    """True when ``value`` is 1..``max_length`` printable token characters (no CR/LF, NUL, space,
    non-ASCII): UUIDs, nginx's 32-hex ``$request_id``, ULIDs and Heroku/Render ids all pass."""
    pattern = _DEFAULT_PATTERN if max_length == DEFAULT_MAX_LENGTH else _charset_pattern(max_length)
    return pattern.fullmatch(value) is not None


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` without building a UUID object (the same bits).

    Kept because it earns its place: ``uuid4()`` costs about 3.5 us more per request here,
    4.8 % of the whole ``rk-full-stack`` (paired runs of ../shared/bench/asgi_overhead.py's
    stack, docs/correlation.md).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _trace_id(traceparent: str) -> str | None:
    """Return the trace id of a valid W3C ``traceparent`` (version 00), else None."""
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    trace_id, parent_id = match.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def get_correlation_id() -> str | None:
    """Return the current request's correlation id, or None outside a request."""
    return correlation_id_var.get()


def _sentry_tag(tag: str | None) -> str | None:
    """``tag`` when sentry-sdk is installed (``pip install 'renderkit[sentry]'``), else None.

    Whether the app uses Sentry is looked up per request in ``sys.modules`` (tens of
    nanoseconds, see :meth:`CorrelationId.bind`): an installed but unused sentry-sdk costs
    nothing, and ``sentry_sdk.init()`` may run before or after the middleware is built.
    """
    if tag is None or importlib.util.find_spec("sentry_sdk") is None:
        return None
    return tag


class CorrelationOptions(TypedDict, total=False):
    """The keyword options of both correlation middleware (ASGI and WSGI); see
    :class:`CorrelationId` for each, or pass a ready ``policy``."""

    header_name: str
    incoming: Sequence[str] | None
    validator: Callable[[str], bool] | None
    generator: Callable[[], str] | None
    transformer: Callable[[str], str] | None
    max_length: int
    update_request_header: bool
    sentry_tag: str | None
    celery_header: str | None
    policy: CorrelationId | None


@dataclass(frozen=True, slots=True)
class CorrelationId:
    """Which incoming headers carry an id, how it is validated, generated and transformed.

    ``header``: the header that echoes the id on the response and that the app sees on the
    request (replaced with the id when ``update_request_header``). ``incoming``: header names
    tried in order (case-insensitive); ``traceparent`` in the list means "the trace id of a
    valid W3C traceparent". ``validator``: True for an acceptable incoming value; it only sees
    values that already pass :func:`is_valid_request_id` with ``max_length`` (a header- and
    log-safe id is never optional). ``generator``: makes a new id (default: uuid4 hex).
    ``transformer``: applied to the accepted or generated id (its result must stay header-safe,
    else the untransformed id is kept). ``sentry_tag``: the Sentry tag set to the id when
    sentry-sdk is installed (None: off). ``celery_header``: the Celery task header carrying the
    id to workers when celery is installed (None: off; see :func:`connect_celery`).
    """

    header: str = "X-Request-ID"
    incoming: Sequence[str] = ("X-Request-ID", "X-Correlation-ID", "traceparent")
    validator: Callable[[str], bool] | None = None
    generator: Callable[[], str] = _uuid4_hex
    transformer: Callable[[str], str] | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    update_request_header: bool = True
    sentry_tag: str | None = "transaction_id"
    celery_header: str | None = CELERY_HEADER
    _incoming_bytes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _incoming_set: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _header_bytes: bytes = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _tag: str | None = field(init=False, repr=False, compare=False)
    _generate: Callable[[], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError("CorrelationId: " + "; ".join(problems))
        set_ = object.__setattr__
        set_(self, "incoming", tuple(self.incoming))
        set_(self, "_incoming_bytes", tuple(n.lower().encode("latin-1") for n in self.incoming))
        set_(self, "_incoming_set", frozenset(self._incoming_bytes))
        set_(self, "_header_bytes", self.header.lower().encode("latin-1"))
        set_(self, "_pattern", _charset_pattern(self.max_length))
        set_(self, "_tag", _sentry_tag(self.sentry_tag))
        # renderkit's own generator needs no guard: call it straight (one call fewer a request)
        set_(self, "_generate", _uuid4_hex if self.generator is _uuid4_hex else self._guarded_id)
        if self.celery_header is not None and importlib.util.find_spec("celery") is not None:
            connect_celery(self.celery_header)

    def _problems(self) -> list[str]:
        problems = []
        if not isinstance(self.header, str) or not _HEADER_NAME.fullmatch(self.header):
            problems.append(f"header={self.header!r} must be a header name such as 'X-Request-ID'")
        if isinstance(self.incoming, str):
            problems.append(
                f"incoming={self.incoming!r} must be a list of header names, not one string"
            )
        elif not all(isinstance(n, str) and _HEADER_NAME.fullmatch(n) for n in self.incoming):
            problems.append(f"incoming={list(self.incoming)!r} must hold header names only")
        if not isinstance(self.max_length, int) or not 1 <= self.max_length <= 1024:
            problems.append(f"max_length={self.max_length!r} must be an integer from 1 to 1024")
        for name in ("validator", "generator", "transformer"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                problems.append(f"{name}={value!r} must be a function")
        return problems

    @classmethod
    def from_options(cls, options: CorrelationOptions) -> CorrelationId:
        """Build the policy from the middleware keyword options (shared by ASGI and WSGI).

        Without ``incoming``, the response header is tried first, then the other common one,
        then ``traceparent``. A ready ``policy`` is used as is (no other option with it).
        """
        unknown = sorted(set(options) - set(CorrelationOptions.__annotations__))
        if unknown:
            raise TypeError(
                f"CorrelationIdMiddleware got unexpected option(s) {', '.join(unknown)}; it "
                f"takes {', '.join(CorrelationOptions.__annotations__)}"
            )
        given: dict[str, Any] = dict(options)
        policy: CorrelationId | None = given.pop("policy", None)
        if policy is not None:
            if given:
                raise TypeError("CorrelationIdMiddleware: give policy= or options, not both")
            return policy
        header = given.pop("header_name", "X-Request-ID")
        if given.get("incoming") is None:
            other = "X-Request-ID" if header.lower() == "x-correlation-id" else "X-Correlation-ID"
            given["incoming"] = (header, other, "traceparent")
        if given.get("generator") is None:
            given["generator"] = _uuid4_hex
        return cls(header=header, **given)

    @property
    def header_bytes(self) -> bytes:
        """The response header name, lower-case bytes (as ASGI wants it)."""
        return self._header_bytes

    @property
    def environ_key(self) -> str:
        """The WSGI environ key of the request header (``HTTP_X_REQUEST_ID``)."""
        return "HTTP_" + self.header.upper().replace("-", "_")

    def is_valid(self, value: str) -> bool:
        """Apply the validator (custom, else the charset-and-length rule)."""
        if self._pattern.fullmatch(value) is None:
            return False
        # A custom validator never sees a value that could break a header or a log line.
        return self.validator is None or bool(self.validator(value))

    def resolve(self, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """Return the id for a request with ``headers`` (ASGI-style pairs): the first acceptable
        incoming one, else a new one; then transformed. Never raises: a broken header is
        skipped, a broken hook is replaced by the default. A refused id is logged at DEBUG."""
        found: dict[bytes, bytes] = {}
        wanted = self._incoming_set
        for key, value in headers:
            if key in wanted and key not in found:
                found[key] = value
        request_id = self._accepted(found) if found else None
        if request_id is None:
            request_id = self._generate()
            if found:
                logger.debug(REJECTED_MESSAGE, request_id, self.header)
        return self._transformed(request_id) if self.transformer is not None else request_id

    def _accepted(self, found: dict[bytes, bytes]) -> str | None:
        for name in self._incoming_bytes:
            raw = found.get(name)
            if raw is None or len(raw) > 4 * self.max_length + 64:
                continue
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                continue
            if name == b"traceparent":
                trace_id = _trace_id(text)
                if trace_id is not None:
                    return trace_id
                continue
            try:
                if self.is_valid(text):
                    return text
            except Exception:
                logger.exception("the correlation id validator raised; treating the id as invalid")
        return None

    def _transformed(self, request_id: str) -> str:
        assert self.transformer is not None
        try:
            value = self.transformer(request_id)
        except Exception:
            logger.exception("the correlation id transformer raised; keeping the id as it was")
            return request_id
        if isinstance(value, str) and self._pattern.fullmatch(value):
            return value
        logger.debug("the correlation id transformer returned an unsafe id; keeping %s", request_id)
        return request_id

    def new_id(self) -> str:
        """Generate an id; fall back to uuid4 hex if the generator fails or returns garbage."""
        return self._generate()

    def _guarded_id(self) -> str:
        try:
            value = self.generator()
        except Exception:
            logger.exception("the correlation id generator raised; using a uuid4 id instead")
            return _uuid4_hex()
        if isinstance(value, str) and self._pattern.fullmatch(value):
            return value
        return _uuid4_hex()

    def request_headers(
        self, headers: Sequence[tuple[bytes, bytes]], request_id: str
    ) -> Sequence[tuple[bytes, bytes]]:
        """The request's ASGI headers as the app should see them: the id header holding
        ``request_id`` once. Unchanged when it already does (or ``update_request_header`` is
        off); a list without the header gets it appended in place (the request owns it)."""
        if not self.update_request_header:
            return headers
        name, value = self._header_bytes, request_id.encode("ascii")
        seen = False
        for key, current in headers:
            if key == name:
                if seen or current != value:  # another id, or the header twice: rebuild
                    return [*((k, v) for k, v in headers if k != name), (name, value)]
                seen = True
        if seen:
            return headers
        if isinstance(headers, list):
            headers.append((name, value))
            return headers
        return [*headers, (name, value)]

    def bind(self, request_id: str) -> None:
        """Hand the id to the integrations (the Sentry tag) for the current request."""
        tag = self._tag
        if tag is None:
            return
        sentry_sdk = sys.modules.get("sentry_sdk")
        if sentry_sdk is not None:  # the app has imported it: Sentry may be in use
            try:
                sentry_sdk.get_isolation_scope().set_tag(tag, request_id)
            except Exception:
                logger.exception("could not set the Sentry tag %r", tag)


def _with_header(
    headers: Iterable[tuple[bytes, bytes]], pair: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """A new header list ending with ``pair``, without any header of the same name (the id the
    middleware resolved wins over one the handler set)."""
    name = pair[0]
    size = len(name)
    out = [*headers]
    for key, _ in out:
        if len(key) == size and key.lower() == name:  # the length first: no copy per header
            out = [(k, v) for k, v in out if k.lower() != name]
            break
    out.append(pair)
    return out


def _request_facts(scope: Scope, request_id: str) -> dict[str, object]:
    route = scope.get("route")
    return {
        "request_id": request_id,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "route": getattr(route, "path", None),
    }


class CorrelationIdMiddleware:
    """Pure ASGI middleware: bind a request id for the request and echo it on the response.

    The app sees the id in its request header (``request.headers["X-Request-ID"]``, HTTP and
    websocket), in ``request.state.request_id`` and from :func:`get_correlation_id`. Options:
    :class:`CorrelationOptions` (``header_name``, ``validator``, ``generator``,
    ``transformer``, ...).

    The id is on every response, including the 500 for an unhandled exception: when the app
    raises before starting its response this middleware sends a plain 500 carrying the id and
    re-raises (so Starlette's error middleware, outside it, only logs). When the app renders its
    own 500 (a handler for ``500`` / ``Exception``, or ``debug=True``) that one is sent instead;
    it runs outside user middleware, so it can read the id from ``request.state.request_id``.
    """

    def __init__(self, app: ASGIApp, **options: Unpack[CorrelationOptions]) -> None:
        self.app = app
        self.policy = CorrelationId.from_options(options)
        self._header = self.policy.header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        policy = self.policy
        request_id = policy.resolve(scope["headers"])
        scope["headers"] = policy.request_headers(scope["headers"], request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        token = correlation_id_var.set(request_id)
        policy.bind(request_id)
        pair = (self._header, request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", ())
                message["headers"] = _with_header(headers, pair)
            elif message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), pair]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # The server logs this after we leave the request's context: carry the id along.
            note_failed_request(exc, _request_facts(scope, request_id))
            if not started and scope["type"] == "http" and not answers_errors_itself(scope):
                await send_error_response(send_with_id)
            raise
        finally:
            correlation_id_var.reset(token)


# --- Celery ---------------------------------------------------------------------------------

celery_parent_id_var: ContextVar[str | None] = ContextVar("renderkit_celery_parent", default=None)
"""In a Celery task: the id of the task that sent it (None when a request or beat sent it)."""
celery_current_id_var: ContextVar[str | None] = ContextVar("renderkit_celery_current", default=None)
"""In a Celery task: this task's own tracing id (its parent's children carry it as parent)."""

_celery_connected: dict[str, Any] = {}


def connect_celery(header: str = CELERY_HEADER, *, parent_header: str = "CELERY_PARENT_ID") -> None:
    """Carry the request id into Celery tasks (``pip install 'renderkit[celery]'``).

    A task published during a request gets the id in its ``header`` task header; the worker
    binds it for the task's logs (a fresh id when the task came from elsewhere), and also
    binds :data:`celery_current_id_var` (a new id per task) and :data:`celery_parent_id_var`
    (the sending task's, via ``parent_header``) for :class:`CeleryTracingFilter`; all are
    cleared after the task. The middleware calls this when celery is installed; call it
    yourself in the worker process (its Celery app module) so the worker side is connected too.
    Idempotent.
    """
    if header in _celery_connected:
        return
    from celery.signals import (  # type: ignore[import-untyped, unused-ignore]
        before_task_publish,
        task_postrun,
        task_prerun,
    )

    default = CorrelationId(celery_header=None)

    def publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is None:
            return
        for name, var in ((header, correlation_id_var), (parent_header, celery_current_id_var)):
            value = var.get()
            if value is not None:
                headers[name] = value

    def valid(value: object) -> str | None:
        return value if isinstance(value, str) and default.is_valid(value) else None

    def prerun(task: Any = None, **_: Any) -> None:
        request = getattr(task, "request", None)
        get = request.get if request is not None else (lambda _name: None)
        request_id = valid(get(header)) or default.new_id()
        correlation_id_var.set(request_id)
        celery_parent_id_var.set(valid(get(parent_header)))
        celery_current_id_var.set(default.new_id())
        default.bind(request_id)

    def postrun(**_: Any) -> None:
        for var in (correlation_id_var, celery_parent_id_var, celery_current_id_var):
            var.set(None)

    uid = f"renderkit.correlation:{header}"
    before_task_publish.connect(publish, weak=False, dispatch_uid=uid)
    task_prerun.connect(prerun, weak=False, dispatch_uid=uid)
    task_postrun.connect(postrun, weak=False, dispatch_uid=uid)
    _celery_connected[header] = (publish, prerun, postrun)


class CorrelationIdFilter(logging.Filter):
    """A stdlib logging filter that puts the request id on every record.

    ``attribute``: the record attribute to set (default ``correlation_id``, use it in a format
    string as ``%(correlation_id)s``); ``default``: the value outside a request; ``length``:
    keep only the first ``length`` characters (None: the whole id). Never filters a record out.
    """

    def __init__(
        self,
        name: str = "",
        *,
        attribute: str = "correlation_id",
        default: str | None = "-",
        length: int | None = None,
    ) -> None:
        super().__init__(name)
        if length is not None and length < 1:
            raise ValueError(f"{type(self).__name__}(length={length}): must be >= 1 or None")
        self.attribute = attribute
        self.default = default
        self.length = length
        self._fields: tuple[tuple[str, ContextVar[str | None]], ...] = (
            (attribute, correlation_id_var),
        )

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute, var in self._fields:
            value = var.get()
            if value is not None and self.length is not None:
                value = value[: self.length]
            setattr(record, attribute, self.default if value is None else value)
        return True


class CeleryTracingFilter(CorrelationIdFilter):
    """Puts ``celery_parent_id`` (the task that sent this one) and ``celery_current_id`` (this
    task) on every record, as :func:`connect_celery` binds them in a worker."""

    def __init__(self, name: str = "", *, default: str | None = "-", length: int | None = None):
        super().__init__(name, default=default, length=length)
        self._fields = (
            ("celery_parent_id", celery_parent_id_var),
            ("celery_current_id", celery_current_id_var),
        )


def outgoing_headers(header_name: str = "X-Request-ID") -> dict[str, str]:
    """Headers to send on an outgoing call so the next service logs the same id (empty outside
    a request): ``httpx.get(url, headers=outgoing_headers())``."""
    value = correlation_id_var.get()
    return {header_name: value} if value is not None else {}


def httpx_hook(request: httpx.Request, header_name: str = "X-Request-ID") -> None:
    """An httpx request event hook adding the current id unless the request already has one:
    ``httpx.Client(event_hooks={"request": [httpx_hook]})``."""
    value = correlation_id_var.get()
    if value is not None and header_name not in request.headers:
        request.headers[header_name] = value


async def async_httpx_hook(request: httpx.Request, header_name: str = "X-Request-ID") -> None:
    """The :func:`httpx_hook` twin for ``httpx.AsyncClient`` (whose hooks must be async)."""
    httpx_hook(request, header_name)

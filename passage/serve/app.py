"""``create_app(model_or_path)``: the ASGI application of ``passage serve`` (FastAPI).

Routes: ``POST /predict``, ``POST /trace``, ``GET /`` (the live reading-trace page),
``GET /health``, ``/ready``, ``/metadata``, ``/metrics``; the OpenAPI schema at ``/openapi.json``
(no Swagger page: FastAPI's loads its script from a CDN, and nothing here may).
Every answer is JSON (the page and the metrics excepted), errors included:
``{"error": message, "status": code}``, never a traceback or a file path. The app can be
mounted in another ASGI application (``parent.mount("/sentiment", create_app(path))``).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which
# name classes imported inside create_app
import functools
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from passage.serve import schema
from passage.serve.batcher import Batcher, Overloaded
from passage.serve.metrics import CONTENT_TYPE, Counter, Gauge, Histogram, render
from passage.serve.page import PAGE
from passage.serve.predictor import InputError, Predictor
from passage.serve.replicas import Replicas
from passage.serve.requests import (
    ApiError,
    Limits,
    parse_json,
    parse_predict,
    parse_trace,
    read_body,
    read_json,
)

log = logging.getLogger("passage.serve")
ROUTES = ("/", "/predict", "/trace", "/health", "/ready", "/metadata", "/metrics",
          "/openapi.json")
OPEN_ROUTES = ("/health",)  # answered without the API key
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
WARM_UP = "Warming up: the first prediction."


def _need_fastapi():
    try:
        import fastapi
    except ImportError:
        raise ImportError("passage serve needs FastAPI and uvicorn: pip install "
                          "'passage[serve]'") from None
    return fastapi


class _Metrics:
    def __init__(self, batcher: Batcher):
        self.requests = Counter("passage_requests_total", "HTTP requests answered.",
                                ("route", "status"))
        self.errors = Counter("passage_request_errors_total",
                              "HTTP requests answered with a 4xx or 5xx status.",
                              ("route", "status"))
        self.latency = Histogram("passage_request_duration_seconds",
                                 "Time from request to response.", _SECONDS, ("route",))
        self.batch_size = Histogram("passage_batch_size", "Texts per forward pass.",
                                    (1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.batch_seconds = Histogram("passage_batch_duration_seconds",
                                       "Time of a forward pass.", _SECONDS)
        self.passes = Counter("passage_forward_passes_total", "Batches run through the model.")
        self.texts = Counter("passage_texts_total", "Texts run through the model.")
        self.depth = Gauge("passage_queue_depth", "Texts waiting for a batch.",
                           lambda: batcher.depth)

    def batch(self, n: int, seconds: float) -> None:
        self.batch_size.observe(n)
        self.batch_seconds.observe(seconds)
        self.passes.inc()
        self.texts.inc(n)

    def text(self) -> str:
        return render([self.requests, self.errors, self.latency, self.batch_size,
                       self.batch_seconds, self.passes, self.texts, self.depth])


def _route(scope: dict) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path if path in ROUTES else "other"


def create_app(model_or_path, *, max_batch_size: int = 64, max_wait_ms: float = 5.0,
               max_queue: int = 1024, limits: Limits | None = None,
               api_key: str | None = None, cors_origins: list[str] | None = None,
               workers: int | None = None, processes: bool | None = None):
    """The service for a model file (or a fitted ``RNN`` with a tokenizer, or a ``Tagger``).

    The model is loaded now: a missing or damaged file raises here, before anything serves.
    max_batch_size / max_wait_ms: how concurrent texts are gathered into forward passes.
    max_queue: texts that may wait; beyond it requests get 503 with Retry-After.
    limits: body bytes, texts per request, characters per text (413 / 422 beyond them).
    api_key: if set, every route but /health needs ``Authorization: Bearer <api_key>``.
    cors_origins: origins allowed to call from a browser (default: none, CORS off).
    workers: batches run side by side (default: one per core on the CPU, one on a GPU).
    processes: run the batches in worker processes, each with its own copy of the model
    (``passage.serve.replicas``: no GIL shared with the event loop, so more answers per second
    under load, for the memory of a process per worker); default: yes for a model file on the
    CPU. A model passed in as an object is always run in this process (it may change).
    """
    fastapi = _need_fastapi()
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request

    from passage.parallel import one_core, thread_count_kept

    from_file = isinstance(model_or_path, str | os.PathLike)
    predictor = Predictor(model_or_path, tables=False)  # (made below if this process predicts)
    n_workers = predictor.cores if workers is None else workers
    if processes is None:
        processes = from_file and predictor.rnn_.device.type == "cpu"
    if processes and not from_file:
        raise ValueError("processes=True needs a model file (each worker process loads it); "
                         "a model object is run in this process")
    if processes:
        replicas = Replicas(os.fspath(model_or_path), n_workers, predictor.sha256_)
        run, trace_text, initializer = replicas.encoded, replicas.trace, replicas.attach
    else:
        predictor.make_tables()
        replicas, run, trace_text, initializer = None, predictor.encoded, predictor.trace, one_core
    limits = limits or Limits()
    batcher = Batcher(run, max_batch_size, max_wait_ms, max_queue, workers=n_workers,
                      initializer=initializer)
    metrics = _Metrics(batcher)
    batcher.on_batch = metrics.batch
    state = {"ready": False}

    async def warm_up() -> None:
        await batcher.submit([WARM_UP])
        state["ready"] = True

    @asynccontextmanager
    async def lifespan(app):
        if replicas is not None:  # (in this thread: a process ends when the thread that
            replicas.start()  # started it does, PR_SET_PDEATHSIG)
        with thread_count_kept():
            batcher.start()
        try:
            await warm_up()
            yield
        finally:
            state["ready"] = False
            batcher.stop()
            if replicas is not None:
                replicas.stop()

    app = _app_class(fastapi)(title="Passage", version=predictor.metadata()["passage_version"],
                          description=schema.DESCRIPTION, lifespan=lifespan,
                          docs_url=None, redoc_url=None)  # their pages load scripts from a CDN
    app.state.predictor, app.state.batcher, app.state.metrics = predictor, batcher, metrics
    app.state.replicas = replicas

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status, headers=headers)

    def failure(e: Exception, path: str) -> JSONResponse:
        """The error response for what a request raised."""
        if isinstance(e, ApiError):
            return error(e.status, e.message, e.headers)
        if isinstance(e, InputError):
            return error(422, str(e))
        if isinstance(e, Overloaded):
            return error(503, "the server is busy (its queue is full): retry after a second, "
                              "or send fewer texts at once", {"Retry-After": "1"})
        log.error("error answering %s", path, exc_info=e)
        return error(500, "internal error while predicting; the server log has the details")

    def guarded(fn: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
        async def run(request: Request):
            try:
                return await fn(request)
            except Exception as e:
                return failure(e, request.url.path)
        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        return run

    async def predicted(body: bytes) -> bytes:
        """The JSON answer to a /predict body: the texts' encoded answers, joined."""
        texts, single, top_k = parse_predict(parse_json(body), limits)
        answers = [predictor.limited_json(a, top_k) for a in await batcher.submit(texts)]
        return answers[0] if single else b"[" + b",".join(answers) + b"]"

    async def predict_fast(scope: Mapping[str, Any],
                           receive: Callable[[], Awaitable[Mapping[str, Any]]]
                           ) -> _Encoded | JSONResponse:
        """POST /predict straight from ASGI (what _Guard calls): no Request object, and the
        answer's bytes sent as they are."""
        try:
            body = await read_body(receive, _header(scope, b"content-length"), limits)
            return _Encoded(await predicted(body))
        except Exception as e:
            return failure(e, scope.get("path", ""))

    async def predict(request: Request):  # (no return annotation: FastAPI would read it)
        """Predict one text or a list of texts (batched with concurrent requests)."""
        answer = await predict_fast(request.scope, request.receive)
        return (Response(answer.body, media_type="application/json")
                if isinstance(answer, _Encoded) else answer)

    # the route, for the schema: _Guard answers POST /predict with predict_fast before the
    # request reaches FastAPI's routing
    app.post("/predict", openapi_extra=schema.body(schema.PredictRequest),
             responses=schema.answers(schema.PredictResponse))(predict)

    @app.post("/trace", openapi_extra=schema.body(schema.TraceRequest),
              responses=schema.answers(schema.TraceResponse))
    @guarded
    async def trace(request: Request):
        """The prediction after every token of one text, with offsets and colours."""
        text = parse_trace(await read_json(request, limits), limits)
        return JSONResponse(await batcher.call(lambda: trace_text(text)))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    @app.get("/health")
    async def health():
        """The process is alive (no API key needed)."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "not warmed up yet, or stopping"}})
    @guarded
    async def ready(request: Request):
        """The model is loaded and has answered a first prediction."""
        if not state["ready"]:
            await warm_up()
        return JSONResponse({"status": "ready"})

    @app.get("/metadata")
    async def metadata():
        """Task, labels, vocabulary size, layers, Passage version, sha256 of the model file,
        and the server's limits."""
        return {**predictor.metadata(),
                "limits": {"max_body_bytes": limits.max_body_bytes,
                           "max_texts": limits.max_texts, "max_chars": limits.max_chars,
                           "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms,
                           "max_queue": max_queue}}

    @app.get("/metrics", response_class=Response)
    async def metrics_text():
        """Counters and histograms in the Prometheus text format."""
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):  # 404, 405 from routing
        message = {404: f"no route {request.url.path!r}: see /openapi.json",
                   405: f"{request.method} is not allowed on {request.url.path!r}"}
        return error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    # in front of FastAPI's whole stack: measures every answer (routing errors included), asks
    # for the API key, answers POST /predict itself; CORS sits outside it, so a browser's
    # preflight is answered before the API key is asked for
    outer: Callable[..., Awaitable] = _Guard(
        lambda *call: fastapi.FastAPI.__call__(app, *call), metrics=metrics, api_key=api_key,
        error=error, fast={("POST", "/predict"): predict_fast})
    if cors_origins:
        outer = CORSMiddleware(outer, allow_origins=list(cors_origins),
                               allow_methods=["GET", "POST"],
                               allow_headers=["Authorization", "Content-Type"])
    app.outer = outer
    return app


@functools.cache
def _app_class(fastapi):
    class PassageApp(fastapi.FastAPI):
        """FastAPI with ``outer`` (``_Guard``, and CORS if asked) in front of its whole
        middleware stack for HTTP: a prediction skips the routing and the layers of
        middleware FastAPI puts around every request (a third of a request's time)."""

        outer = None

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and self.outer is not None:
                return await self.outer(scope, receive, send)
            return await super().__call__(scope, receive, send)

    return PassageApp


class _Guard:
    """Pure ASGI middleware (no per-request task or body copy, unlike ``@app.middleware``):
    the API key check and the request counters and latency of every HTTP answer, and the
    ``fast`` routes answered here."""

    def __init__(self, app, metrics: _Metrics, api_key: str | None, error,
                 fast: dict | None = None):
        self.app, self.metrics, self.api_key, self.error = app, metrics, api_key, error
        self.fast = fast or {}  # (method, route) -> endpoint(scope, receive), answered here

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route, began = _route(scope), time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        if self.api_key is not None and route not in OPEN_ROUTES and \
                not _authorized(scope, self.api_key):
            response = self.error(401, "this server needs an API key: send the header "
                                       "'Authorization: Bearer <key>'",
                                  {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, sending)
        elif (scope.get("method"), route) in self.fast:
            response = await self.fast[scope["method"], route](scope, receive)
            status["code"] = response.status_code  # (no wrapper around send needed)
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, sending)
        code = str(status["code"])
        self.metrics.requests.inc(route=route, status=code)
        if status["code"] >= 400:
            self.metrics.errors.inc(route=route, status=code)
        self.metrics.latency.observe(time.perf_counter() - began, route=route)


class _Encoded:
    """A 200 answer already encoded as JSON (lighter than a Starlette response)."""

    __slots__ = ("body",)
    status_code = 200

    def __init__(self, body: bytes):
        self.body = body

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(self.body))]})
        await send({"type": "http.response.body", "body": self.body})


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _authorized(scope: Mapping[str, Any], api_key: str) -> bool:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              api_key.encode())

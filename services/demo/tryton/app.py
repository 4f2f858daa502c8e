"""The demo Tryton server over HTTP: the Starlette app and its JSON-RPC endpoint.

``POST /<db>/rpc/`` (and ``/<db>/``) with a JSON body of exactly ``id``, ``method`` and
``params``; ``POST /rpc/`` answers ``common.server.version`` and ``common.db.list``. The
endpoint hands each call to :class:`~services.demo.tryton.service.TrytonService` and writes its
result or error as trytond does; :func:`create_app` puts fault injection in front.
"""

from __future__ import annotations

import binascii
import gzip
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import ErpStore
from services.demo.tryton.errors import (
    HTTPAbort,
    TrytonException,
    TrytonUserWarning,
    UserError,
    html_error,
    render_fault,
)
from services.demo.tryton.service import Clock, TrytonService, utc_now
from services.io.tryton_rpc import dumps, loads

log = logging.getLogger(__name__)

GZIP_THRESHOLD = 1400


def _json_response(request: Request, payload: Any, status: int = 200) -> Response:
    body = dumps(payload)
    headers = {"Connection": "close"}
    if len(body) > GZIP_THRESHOLD and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _unwrapped_error(exc: BaseException) -> Response:
    """trytond's answer to an error when the body was not ``{id, method, params}``."""
    if isinstance(exc, TrytonUserWarning):
        return html_error(417, str(exc.payload[1]))
    if isinstance(exc, UserError):
        return html_error(400, str(exc.payload[0]))
    return html_error(500)


class RpcEndpoint:
    def __init__(self, service: TrytonService) -> None:
        self.service = service

    async def handle(self, request: Request) -> Response:
        database = request.path_params.get("database")
        body = await request.body()
        try:
            data = loads(body)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return html_error(400)
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return html_error(400)
        params = data.get("params", [])
        if not isinstance(params, list):
            return html_error(400)
        wrapped = set(data) == {"id", "method", "params"}
        try:
            outcome = await run_in_threadpool(self.service.handle, database, data["method"], params,
                                              request.headers.get("authorization"))
        except HTTPAbort as abort:
            return abort.response()
        except TrytonException as exc:
            if not wrapped:
                return _unwrapped_error(exc)
            return _json_response(request, {"id": data["id"], "error": exc.envelope()})
        except Exception as exc:
            log.debug("tryton demo: %s failed", data["method"], exc_info=True)
            if not wrapped:
                return _unwrapped_error(exc)
            return _json_response(request, {"id": data["id"], "error": [str(exc), ""]})
        if outcome.wrote:
            request.state.write = True
        if not wrapped:
            return _json_response(request, outcome.result)
        return _json_response(request, {"id": data["id"], "result": outcome.result})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return html_error(status)


def create_app(store: ErpStore, injector: FaultInjector, *, clock: Clock | None = None) -> ASGIApp:
    """The Tryton-compatible demo server over ``store``, behind fault injection."""
    service = TrytonService(store, clock or utc_now)
    endpoint = RpcEndpoint(service).handle
    routes = [
        Route("/", endpoint, methods=["POST"]),
        Route("/rpc/", endpoint, methods=["POST"]),
        Route("/{database}/", endpoint, methods=["POST"]),
        Route("/{database}/rpc/", endpoint, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.tryton = service
    return FaultMiddleware(app, injector, render_fault)

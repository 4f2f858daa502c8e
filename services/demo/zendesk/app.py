"""The demo Zendesk server's application: :class:`ZendeskApi` (every resource's handlers and
the route table, each path with and without ``.json``) and :func:`create_app` (behind
authentication and fault injection with rate-limit headers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import SupportStore
from services.demo.zendesk.auth import AuthMiddleware
from services.demo.zendesk.errors import ApiError, render_error
from services.demo.zendesk.incremental import IncrementalApi
from services.demo.zendesk.organizations import OrganizationsApi
from services.demo.zendesk.search import SearchApi
from services.demo.zendesk.serializers import API
from services.demo.zendesk.tickets import TicketsApi
from services.demo.zendesk.timestamps import Clock
from services.demo.zendesk.users import UsersApi


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ZendeskApi(OrganizationsApi, UsersApi, TicketsApi, SearchApi, IncrementalApi):
    """The demo Zendesk API: the handlers of every resource and their routes."""

    def routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request], Any], list[str]]] = [
            ("/organizations", self.list_organizations, ["GET"]),
            ("/organizations", self.create_organization, ["POST"]),
            ("/organizations/search", self.search_organizations, ["GET"]),
            ("/organizations/{organization_id}", self.show_organization, ["GET"]),
            ("/organizations/{organization_id}", self.update_organization, ["PUT"]),
            ("/organization_fields", self.list_organization_fields, ["GET"]),
            ("/users", self.list_users, ["GET"]),
            ("/users", self.create_user, ["POST"]),
            ("/users/me", self.show_me, ["GET"]),  # before /users/{user_id}, which "me" would match
            ("/users/{user_id}", self.show_user, ["GET"]),
            ("/tickets", self.list_tickets, ["GET"]),
            ("/tickets", self.create_ticket, ["POST"]),
            ("/tickets/{ticket_id}", self.show_ticket, ["GET"]),
            ("/search", self.search, ["GET"]),
            ("/incremental/tickets/cursor", self.incremental_tickets, ["GET"]),
        ]
        routes: list[Route] = []
        for path, handler, methods in table:
            guarded = _guard(handler)
            if "{" in path:  # "{id}" also matches "{id}.json" (stripped in _path_id)
                routes.append(Route(API + path, guarded, methods=methods))
            else:
                routes.append(Route(API + path + ".json", guarded, methods=methods))
                routes.append(Route(API + path, guarded, methods=methods))
        return routes


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except ApiError as exc:
            return exc.response()
        return response

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, status_code=404)
    if status == 405:
        return JSONResponse({"error": "MethodNotAllowed", "description": "Method not allowed"},
                            status_code=405)
    return JSONResponse({"error": "Error", "description": str(getattr(exc, "detail", exc))},
                        status_code=status)


def create_app(store: SupportStore, injector: FaultInjector, *, clock: Clock | None = None) -> ASGIApp:
    """The demo support server: Zendesk's API over ``store``, behind auth and fault injection."""
    api = ZendeskApi(store, clock or _utc_now)
    app = Starlette(routes=api.routes(), exception_handlers={HTTPException: _http_error})
    return FaultMiddleware(AuthMiddleware(app, store), injector, render_error, rate_headers=True)

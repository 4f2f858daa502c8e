"""The errors the demo Tryton server answers with.

trytond reports errors in three kinds: inside the JSON envelope as ``"error": [kind, args]``
(:class:`TrytonException` and its ``UserError`` / ``UserWarning`` / ``LoginException``), as
``[str(exception), ""]`` for anything else (written by the endpoint in
:mod:`services.demo.tryton.app`), and as bare HTTP errors with HTML bodies as werkzeug renders
them (:class:`HTTPAbort`, :func:`html_error`, :func:`render_fault` for the fault injector).
"""

from __future__ import annotations

import html
from typing import Any

from starlette.responses import Response


class TrytonException(Exception):
    """An error trytond reports inside the JSON envelope: ``"error": [kind, args]``."""

    def __init__(self, kind: str, args: list[Any]) -> None:
        super().__init__(kind, args)
        self.kind = kind
        self.payload = args

    def envelope(self) -> list[Any]:
        return [self.kind, self.payload]


class UserError(TrytonException):
    def __init__(self, message: str, description: str = "", domain: Any = None) -> None:
        super().__init__("UserError", [message, description, domain])


class TrytonUserWarning(TrytonException):
    def __init__(self, name: str, message: str, description: str = "") -> None:
        super().__init__("UserWarning", [name, message, description])


class LoginException(TrytonException):
    def __init__(self, name: str, message: str, type_: str) -> None:
        super().__init__("LoginException", [name, message, type_])


_HTTP_TEXTS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    401: ("Unauthorized", "The server could not verify that you are authorized to access the URL "
          "requested. You either supplied the wrong credentials (e.g. a bad password), or your "
          "browser doesn't understand how to supply the credentials required."),
    403: ("Forbidden", "You don't have the permission to access the requested resource. It is "
          "either read-protected or not readable by the server."),
    404: ("Not Found", "The requested URL was not found on the server. If you entered the URL "
          "manually please check your spelling and try again."),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    417: ("Expectation Failed", "The server could not meet the requirements of the Expect header"),
    422: ("Unprocessable Entity", "The request was well-formed but was unable to be followed due "
          "to semantic errors."),
    429: ("Too Many Requests", "This user has exceeded an allotted request count. Try again later."),
    500: ("Internal Server Error", "The server encountered an internal error and was unable to "
          "complete your request. Either the server is overloaded or there is an error in the "
          "application."),
    503: ("Service Unavailable", "The server is temporarily unable to service your request due to "
          "maintenance downtime or capacity problems. Please try again later."),
}


def html_error(status: int, description: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """An HTTP error page as werkzeug renders it (trytond aborts through werkzeug)."""
    name, default = _HTTP_TEXTS.get(status, ("Error", ""))
    body = (f"<!doctype html>\n<html lang=en>\n<title>{status} {name}</title>\n<h1>{name}</h1>\n"
            f"<p>{html.escape(description or default)}</p>\n")
    all_headers = {"Connection": "close", **(headers or {})}
    return Response(body, status_code=status, media_type="text/html; charset=utf-8", headers=all_headers)


class HTTPAbort(Exception):
    """A bare HTTP error answer (the third kind of error)."""

    def __init__(self, status: int, *, empty: bool = False, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.empty = empty
        self.headers = headers or {}

    def response(self) -> Response:
        if self.empty:
            return Response(b"", status_code=self.status, headers={"Connection": "close", **self.headers})
        return html_error(self.status, headers=self.headers)


def render_fault(status: int, message: str, retry_after: float | None) -> Response:
    """ErrorRenderer for :class:`FaultMiddleware`: trytond's HTTP errors are HTML, not JSON."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return html_error(status, message, headers)

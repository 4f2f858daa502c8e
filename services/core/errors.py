"""Typed errors of the connectors. Each carries the system, the operation and the vendor's
message (never a credential), so a view can say exactly what failed and where.

Every text a :class:`ConnectorError` holds may come from the upstream (the vendor's message, its
error code, a request id from a response header, a Tryton warning's name) and an upstream can echo
the credentials it received: the constructors pass each through the one redactor
(:func:`services.core.redaction.redact`), so no log line, terminal, snapshot or audit entry made
from an error can hold a credential.
"""

from __future__ import annotations

from services.core.domain import System
from services.core.redaction import redact


def _clean(text: str | None) -> str | None:
    return redact(text) if text else text


class SyncDeskError(Exception):
    """Base of every error SyncDesk raises on purpose."""


class ConnectorError(SyncDeskError):
    """A call to an external system failed."""

    kind = "error"

    def __init__(self, system: System, operation: str, message: str, *, status: int | None = None,
                 request_id: str | None = None, vendor_code: str | None = None) -> None:
        self.system = system
        self.operation = operation
        self.message = redact(message)
        self.status = status
        self.request_id = _clean(request_id)
        self.vendor_code = _clean(vendor_code)
        super().__init__(str(self))

    def __str__(self) -> str:
        extra = []
        if self.status is not None:
            extra.append(f"HTTP {self.status}")
        if self.vendor_code:
            extra.append(self.vendor_code)
        if self.request_id:
            extra.append(f"request {self.request_id}")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.system.value} {self.operation}: {self.message}{tail}"


class AuthenticationError(ConnectorError):
    """Credentials missing, wrong or expired (401/403)."""

    kind = "authentication"


class NotFoundError(ConnectorError):
    """The object does not exist in the system (404)."""

    kind = "not found"


class RateLimitedError(ConnectorError):
    """The system asked us to slow down (429) and retries were exhausted."""

    kind = "rate limited"

    def __init__(self, *args: object, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class UnavailableError(ConnectorError):
    """The system could not be reached or failed (timeout, connection error, 5xx)."""

    kind = "unavailable"


class CircuitOpenError(UnavailableError):
    """Calls are not attempted: the system failed repeatedly and is resting."""

    kind = "circuit open"


class ProtocolError(ConnectorError):
    """The answer was not what the protocol promises (bad JSON, schema violation)."""

    kind = "protocol"


class RemoteValidationError(ConnectorError):
    """The system refused the request's content (400/422, Tryton UserError)."""

    kind = "validation"


class RemoteWarning(ConnectorError):
    """The system asks for an explicit acknowledgement (Tryton UserWarning)."""

    kind = "warning"

    def __init__(self, *args: object, warning_name: str = "", **kwargs: object) -> None:
        self.warning_name = redact(warning_name)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class CancelledByUser(SyncDeskError):
    """The operator cancelled a long-running operation."""

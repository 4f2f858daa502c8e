"""Logging for every command: a rotating file in SYNCDESK_HOME/logs plus stderr.

Both handlers pass every record through one :class:`~services.core.redaction.RedactingFilter`:
the rendered message, its traceback and stack text have every credential masked (configured
secrets in every encoding, anything credential-shaped: services.core.redaction) and every
control character shown as a visible escape (a log is read in a terminal: an upstream's
``ESC]52;…`` must not reach the clipboard through ``tail -f``)."""

from __future__ import annotations

import logging
import logging.handlers

from services.core.redaction import RedactingFilter
from services.store.home import logs_dir

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False, console_level: int = logging.WARNING) -> None:
    root = logging.getLogger()
    if getattr(root, "_syncdesk_configured", False):
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    redact = RedactingFilter()  # one filter, both handlers: nothing reaches a log line unredacted
    file_handler = logging.handlers.RotatingFileHandler(
        logs_dir() / "syncdesk.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.addFilter(redact)
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.DEBUG if verbose else console_level)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stderr.addFilter(redact)
    root.addHandler(file_handler)
    root.addHandler(stderr)
    # uvicorn's own noise (dropped connections are a demo fault mode) goes to the file only
    logging.getLogger("uvicorn.error").propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root._syncdesk_configured = True  # type: ignore[attr-defined]

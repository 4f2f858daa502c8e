"""Alembic environment: SyncDesk passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import services.store.storage  # noqa: F401 - registers the tables on SQLModel.metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by the alembic CLI
    raise RuntimeError("run migrations through services.store.storage.Storage")
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

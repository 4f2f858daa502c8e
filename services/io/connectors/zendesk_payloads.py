"""Zendesk Support's payloads: pydantic models of the objects and page envelopes SyncDesk
reads (``shared/specs/zendesk/syncdesk-subset.json``); extra fields allowed, required fields
and types validated. Their mapping onto the canonical model is
:class:`~services.io.connectors.zendesk.ZendeskConnector`'s.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ZdOrganization(_Model):
    id: StrictInt
    name: StrictStr
    external_id: StrictStr | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    #: custom fields of any type (checkboxes are booleans); ours are checked when mapping
    organization_fields: dict[str, Any] | None = None


class ZdTicket(_Model):
    id: StrictInt
    status: StrictStr
    created_at: AwareDatetime
    updated_at: AwareDatetime
    subject: StrictStr | None = None
    raw_subject: StrictStr | None = None
    priority: StrictStr | None = None
    organization_id: StrictInt | None = None
    #: not part of Zendesk's ticket object; honoured when a proxy or sideload adds it
    solved_at: AwareDatetime | None = None


class ZdMetricSet(_Model):
    ticket_id: StrictInt
    solved_at: AwareDatetime | None = None


class CursorMeta(_Model):
    has_more: StrictBool
    after_cursor: StrictStr | None = None


class CursorLinks(_Model):
    next: StrictStr | None = None


class OrganizationListPage(_Model):
    organizations: list[dict[str, Any]]
    meta: CursorMeta
    links: CursorLinks = CursorLinks()


class OrganizationSearchPage(_Model):
    """``GET /organizations/search`` (by external_id): not paginated in practice."""

    organizations: list[dict[str, Any]]


class SearchPage(_Model):
    results: list[dict[str, Any]]
    count: StrictInt | None = None
    next_page: StrictStr | None = None


class ExportPage(_Model):
    tickets: list[dict[str, Any]]
    end_of_stream: StrictBool
    after_cursor: StrictStr | None = None
    after_url: StrictStr | None = None
    metric_sets: list[dict[str, Any]] | None = None


class OrganizationEnvelope(_Model):
    organization: dict[str, Any]

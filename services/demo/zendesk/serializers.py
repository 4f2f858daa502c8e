"""Store records -> Zendesk JSON (pure), following the subset's schemas: a property the spec
does not declare nullable is left out when its value is unknown; resource URLs under
``/api/v2``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from services.demo.store import SupportStore
from services.demo.zendesk.records import Record
from services.demo.zendesk.timestamps import EPOCH, _jsonable, iso

API = "/api/v2"


def _resource_url(base_url: str, collection: str, rid: int) -> str:
    return f"{base_url.rstrip('/')}{API}/{collection}/{rid}.json"


def _render(record: Record, defaults: dict[str, Any], omit_if_none: Iterable[str]) -> dict[str, Any]:
    """``defaults`` (JSON-ready) overlaid with the record's public fields (hot path: keep it lean)."""
    out = dict(defaults)
    for key, value in record.items():
        if key[:1] == "_":
            continue
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, (dict, list, tuple, date)):  # a tuple: faster than a union
            value = _jsonable(value)
        out[key] = value
    for key in omit_if_none:
        if out.get(key) is None:
            out.pop(key, None)
    return out


def render_organization(store: SupportStore, org: Record, base_url: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "url": None, "id": None, "name": "", "shared_tickets": False, "shared_comments": False,
        "external_id": None, "created_at": None, "updated_at": None, "domain_names": [],
        "details": None, "notes": None, "group_id": None, "tags": [], "organization_fields": {},
    }
    out = _render(org, defaults, ())
    out["url"] = _resource_url(base_url, "organizations", org["id"])
    known = {f["key"] for f in store.organization_fields}
    fields_ = org.get("organization_fields") or {}
    # the spec types custom field values as string|number: unset fields are left out
    out["organization_fields"] = {k: _jsonable(v) for k, v in fields_.items()
                                  if v is not None and (k in known or isinstance(v, str | int | float))}
    return out


def render_user(store: SupportStore, user: Record, base_url: str) -> dict[str, Any]:
    role = user.get("role") or "end-user"
    defaults: dict[str, Any] = {
        "id": None, "url": None, "name": "", "email": None, "created_at": None, "updated_at": None,
        "time_zone": "UTC", "iana_time_zone": "Etc/UTC", "phone": None, "shared_phone_number": None,
        "photo": None, "locale_id": 1, "locale": "en-US", "organization_id": None, "role": role,
        "verified": True, "external_id": None, "tags": [], "alias": "", "active": True,
        "shared": False, "shared_agent": False, "last_login_at": None,
        "two_factor_auth_enabled": None, "signature": None, "details": "", "notes": "",
        "role_type": None, "custom_role_id": None, "moderator": role != "end-user",
        "ticket_restriction": "requested" if role == "end-user" else None,
        "only_private_comments": False, "restricted_agent": role == "agent", "suspended": False,
        "default_group_id": None, "report_csv": False, "user_fields": {},
    }
    out = _render(user, defaults, ("email", "last_login_at", "signature", "default_group_id"))
    out["url"] = _resource_url(base_url, "users", user["id"])
    return out


_TICKET_OMIT_IF_NONE = ("external_id", "type", "priority", "recipient", "assignee_id", "group_id",
                        "organization_id", "submitter_id", "problem_id", "brand_id", "ticket_form_id",
                        "forum_topic_id", "custom_status_id", "raw_subject", "subject", "description",
                        "satisfaction_rating", "status")


def render_ticket(store: SupportStore, ticket: Record, base_url: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "url": None, "id": None, "external_id": None, "via": {"channel": "web"},
        "created_at": None, "updated_at": None, "type": None, "subject": None, "raw_subject": None,
        "description": None, "priority": None, "status": "new", "recipient": None,
        "requester_id": None, "submitter_id": None, "assignee_id": None, "organization_id": None,
        "group_id": None, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
        "forum_topic_id": None, "problem_id": None, "has_incidents": False, "is_public": True,
        "due_at": None, "tags": [], "custom_fields": [], "sharing_agreement_ids": [],
        "followup_ids": [], "allow_channelback": False, "allow_attachments": True,
        "from_messaging_channel": False,
    }
    out = _render(ticket, defaults, ())
    if out.get("raw_subject") is None:
        out["raw_subject"] = out.get("subject")
    if out.get("submitter_id") is None:
        out["submitter_id"] = out.get("requester_id")
    for key in _TICKET_OMIT_IF_NONE:
        if out.get(key) is None:
            out.pop(key, None)
    out["url"] = _resource_url(base_url, "tickets", ticket["id"])
    return out


def render_organization_field(field_def: Record, position: int, base_url: str) -> dict[str, Any]:
    fid = int(field_def["id"])
    stamp = iso(field_def.get("created_at") or EPOCH)
    out: dict[str, Any] = {
        "url": _resource_url(base_url, "organization_fields", fid), "id": fid,
        "type": field_def["type"], "key": field_def["key"], "title": field_def["title"],
        "raw_title": field_def["title"], "description": field_def.get("description", ""),
        "raw_description": field_def.get("description", ""), "position": position,
        "active": True, "system": False, "regexp_for_validation": None,
        "created_at": stamp, "updated_at": stamp,
    }
    if field_def["type"] == "dropdown":
        out["custom_field_options"] = [
            {"id": fid * 100 + i, "name": opt.title(), "raw_name": opt.title(), "value": opt}
            for i, opt in enumerate(field_def.get("options", []), start=1)
        ]
    return out

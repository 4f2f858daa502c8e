"""Ticket sideloads (``include=users,organizations,groups``): the records a page of tickets
refers to, answered beside the tickets in one response, as Zendesk's "Tickets sideloads" do
(the incremental export's spec text points to them). A name Zendesk does not sideload for tickets
here (``last_audits``, ``metric_sets`` ...) is ignored, as Zendesk ignores an unknown one."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from services.demo.store import SupportStore
from services.demo.zendesk.records import Record
from services.demo.zendesk.serializers import render_organization, render_user

_USER_KEYS = ("requester_id", "submitter_id", "assignee_id")
_USER_LISTS = ("collaborator_ids", "follower_ids", "email_cc_ids")


def requested(request: Request) -> set[str]:
    """The sideload names of ``include`` (comma-separated, repeatable)."""
    names: set[str] = set()
    for raw in request.query_params.getlist("include"):
        names |= {n.strip() for n in raw.split(",") if n.strip()}
    return names


def ticket_sideloads(store: SupportStore, tickets: list[Record], names: set[str], base_url: str) -> dict[str, Any]:
    """``{"users": [...], "organizations": [...], "groups": [...]}`` for the asked names."""
    out: dict[str, Any] = {}
    if "users" in names:
        ids: set[int] = set()
        for t in tickets:
            ids |= {t[k] for k in _USER_KEYS if t.get(k) is not None}
            for key in _USER_LISTS:
                ids |= set(t.get(key) or [])
        out["users"] = [render_user(store, store.users[i], base_url) for i in sorted(ids) if i in store.users]
    if "organizations" in names:
        org_ids = sorted({t["organization_id"] for t in tickets if t.get("organization_id") is not None})
        out["organizations"] = [render_organization(store, store.organizations[i], base_url)
                                for i in org_ids if i in store.organizations]
    if "groups" in names:  # the demo desk keeps no groups: the sideload is there, empty
        out["groups"] = []
    return out

"""``/api/v2/tickets``: list (by external id), show and create (requester defaulting to the
agent, organization to the requester's)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.zendesk.api_base import ApiBase, _base, _path_id
from services.demo.zendesk.bodies import _opt_int, _opt_str, _str_list, _wrapped_body
from services.demo.zendesk.errors import invalid_value, record_not_found
from services.demo.zendesk.pagination import list_page
from services.demo.zendesk.params import check_body_types, operation
from services.demo.zendesk.records import TICKET_PRIORITIES, TICKET_STATUSES, TICKET_TYPES, Record
from services.demo.zendesk.serializers import render_ticket
from services.demo.zendesk.sideloads import requested, ticket_sideloads
from services.demo.zendesk.timestamps import _parse_when, iso

CREATE_TICKET = "POST /api/v2/tickets"
#: the create's documented property types; collaborators are ids, addresses or ``{name, email}``
#: (the spec's text; its item schema shows the object form only), checked one by one
TICKET_PROPERTIES: dict[str, Any] = {
    **(operation(CREATE_TICKET)["body"] or {}).get("properties", {}),
    "collaborators": {"type": "array"}, "additional_collaborators": {"type": "array"},
}


class TicketsApi(ApiBase):
    """The ticket endpoints."""

    async def list_tickets(self, request: Request) -> Response:
        external_id = request.query_params.get("external_id")
        with self.store.lock:
            ids = self.ix.ticket_ids.current()
            if external_id:
                ids = [i for i in ids if self.store.tickets[i].get("external_id") == external_id]
            page = list_page(request, ids)
            items = [render_ticket(self.store, self.store.tickets[i], _base(request)) for i in page.ids]
            extra = ticket_sideloads(self.store, [self.store.tickets[i] for i in page.ids], requested(request),
                                     _base(request))
        return JSONResponse({"tickets": items, **page.body, **extra})

    async def show_ticket(self, request: Request) -> Response:
        tid = _path_id(request, "ticket_id")
        with self.store.lock:
            ticket = self.store.tickets.get(tid)
            if ticket is None:
                raise record_not_found()
            extra = ticket_sideloads(self.store, [ticket], requested(request), _base(request))
            return JSONResponse({"ticket": render_ticket(self.store, ticket, _base(request)), **extra})

    async def create_ticket(self, request: Request) -> Response:
        body = await _wrapped_body(request, "ticket")
        # (a plain-text comment is taken as its body, as Zendesk does)
        check_body_types(CREATE_TICKET, {k: v for k, v in body.items() if k != "comment"}, TICKET_PROPERTIES)
        agent_email = getattr(request.state, "agent_email", None)
        with self.store.lock:
            ticket = self._new_ticket(body, agent_email)
            tid = ticket["id"]
            self.store.tickets[tid] = ticket
            self.ix.ticket_ids.add(tid)
            self.ix.timeline.touch(tid)
            self.ix.tickets_by_org.add(tid)
            rendered = render_ticket(self.store, ticket, _base(request))
        request.state.write = True
        audit = {
            "id": tid * 1000 + 1, "ticket_id": tid, "created_at": rendered["created_at"],
            "author_id": ticket.get("submitter_id"), "metadata": {"system": {}, "custom": {}},
            "via": ticket["via"],
            "events": [{"id": tid * 1000 + 2, "type": "Comment", "author_id": ticket.get("submitter_id"),
                        "body": ticket["description"], "public": True, "attachments": []}],
        }
        return JSONResponse({"ticket": rendered, "audit": audit}, status_code=201,
                            headers={"Location": rendered["url"]})

    def _agent_user_id(self, email: str | None) -> int | None:
        if not email:
            return None
        ids = self.ix.user_emails.get(email.lower())
        return min(ids) if ids else None

    def _user_ref(self, given: Any, key: str, title: str) -> int:
        """A user named by id, e-mail address or ``{"name", "email"}`` (an unknown address becomes
        a new end user, as Zendesk adds one for a CC or collaborator)."""
        if (isinstance(given, int) and not isinstance(given, bool)) or (isinstance(given, str) and given.isdigit()):
            uid = int(given)
            if uid not in self.store.users:
                raise invalid_value(key, title, "is invalid")
            return uid
        email, name = (given.get("email"), given.get("name")) if isinstance(given, dict) else (given, None)
        if not isinstance(email, str) or "@" not in email:
            raise invalid_value(key, title, "is invalid")
        found = self.ix.user_emails.get(email.strip().lower())
        if found:
            return min(found)
        now = self.clock()
        uid = self.store.new_id("user")
        self.store.users[uid] = {
            "id": uid, "name": name if isinstance(name, str) and name.strip() else email.split("@")[0],
            "email": email.strip(), "role": "end-user", "organization_id": None, "active": True,
            "verified": False, "tags": [], "created_at": now, "updated_at": now,
        }
        self.ix.user_ids.add(uid)
        self.ix.user_emails.add(uid)
        return uid

    def _user_list(self, body: dict[str, Any], ids_key: str, refs_keys: tuple[str, ...], title: str) -> list[int]:
        ids = [self._user_ref(v, ids_key, title) for v in body.get(ids_key) or []]
        for key in refs_keys:
            ids += [self._user_ref(v, key, title) for v in body.get(key) or []]
        return list(dict.fromkeys(ids))

    def _changes_list(self, body: dict[str, Any], key: str, ids: list[int], title: str) -> list[int]:
        """``followers`` / ``email_ccs``: ``{"user_id" | "user_email", "action": "put" | "delete"}``."""
        out = list(ids)
        for change in body.get(key) or []:
            if not isinstance(change, dict):
                raise invalid_value(key, title, "is invalid")
            ref = change.get("user_id") or change.get("user_email")
            if ref is None:
                raise invalid_value(key, title, "is invalid")
            uid = self._user_ref(ref if "user_id" in change else {"email": ref, "name": change.get("user_name")},
                                 key, title)
            if change.get("action", "put") == "delete":
                out = [u for u in out if u != uid]
            elif uid not in out:
                out.append(uid)
        return out

    def _documented_extras(self, body: dict[str, Any], comment: Any) -> Record:
        """The create's documented properties beyond the core ones, as a ticket stores them."""
        extra: Record = {}
        for key in ("brand_id", "custom_status_id", "problem_id", "ticket_form_id", "via_followup_source_id"):
            value = _opt_int(body, key, key.replace("_", " ").capitalize())
            if value is not None:
                extra[key] = value
        for key in ("recipient", "raw_subject"):
            text = _opt_str(body, key, key.replace("_", " ").capitalize())
            if text is not None:
                extra[key] = text
        if body.get("due_at") is not None:
            when = _parse_when(body["due_at"]) if isinstance(body["due_at"], str) else None
            if when is None:
                raise invalid_value("due_at", "Due at", "is not a valid date")
            extra["due_at"] = iso(when)
        extra["collaborator_ids"] = self._user_list(body, "collaborator_ids", ("collaborators",
                                                                              "additional_collaborators"),
                                                    "Collaborators")
        extra["follower_ids"] = self._changes_list(
            body, "followers", self._user_list(body, "follower_ids", (), "Followers"), "Followers")
        extra["email_cc_ids"] = self._changes_list(
            body, "email_ccs", self._user_list(body, "email_cc_ids", (), "Email CCs"), "Email CCs")
        fields_ = body.get("custom_fields") or []
        if not all(isinstance(f, dict) and isinstance(f.get("id"), int) for f in fields_):
            raise invalid_value("custom_fields", "Custom fields", "is invalid")
        extra["custom_fields"] = [{"id": f["id"], "value": f.get("value")} for f in fields_]
        extra["sharing_agreement_ids"] = [int(v) for v in body.get("sharing_agreement_ids") or []]
        if isinstance(comment, dict) and comment.get("public") is False:
            extra["is_public"] = False
        return extra

    def _new_ticket(self, body: dict[str, Any], agent_email: str | None) -> Record:
        comment = body.get("comment")
        text = None
        if isinstance(comment, dict):
            if not isinstance(comment.get("public", True), bool):
                raise invalid_value("comment", "Comment", "public is invalid")
            text = comment.get("body") or comment.get("html_body")
        elif isinstance(comment, str):
            text = comment
        if not isinstance(text, str) or not text.strip():
            raise invalid_value("base", "Description", "cannot be blank", "BlankValue")
        requester_id = _opt_int(body, "requester_id", "Requester")
        if requester_id is None:
            requester_id = self._agent_user_id(agent_email)
        if requester_id is None or requester_id not in self.store.users:
            raise invalid_value("requester", "Requester", "is invalid" if requester_id else "cannot be blank")
        org_id = _opt_int(body, "organization_id", "Organization")
        if org_id is None:
            org_id = self.store.users[requester_id].get("organization_id")
        elif org_id not in self.store.organizations:
            raise invalid_value("organization_id", "Organization", "is invalid")
        priority = _opt_str(body, "priority", "Priority")
        if priority is not None and priority not in TICKET_PRIORITIES:
            raise invalid_value("priority", "Priority", "is not valid")
        ttype = _opt_str(body, "type", "Type")
        if ttype is not None and ttype not in TICKET_TYPES:
            raise invalid_value("type", "Type", "is not valid")
        assignee_id = _opt_int(body, "assignee_id", "Assignee")
        if assignee_id is None and body.get("assignee_email") is not None:
            found = self.ix.user_emails.get(str(body["assignee_email"]).strip().lower())
            agents = sorted(u for u in found if (self.store.users[u].get("role") or "end-user") != "end-user")
            if not agents:
                raise invalid_value("assignee", "Assignee", "is invalid")
            assignee_id = agents[0]
        status = _opt_str(body, "status", "Status") or ("open" if assignee_id else "new")
        if status not in TICKET_STATUSES:
            raise invalid_value("status", "Status", "is not valid")
        subject = _opt_str(body, "subject", "Subject") or _opt_str(body, "raw_subject", "Raw subject")
        if not subject:
            subject = text.strip().splitlines()[0][:80]
        extras = self._documented_extras(body, comment)
        submitter_id = _opt_int(body, "submitter_id", "Submitter")
        author_id = _opt_int(comment, "author_id", "Author") if isinstance(comment, dict) else None
        submitter_id = submitter_id if submitter_id is not None else author_id
        if submitter_id is not None and submitter_id not in self.store.users:
            raise invalid_value("submitter", "Submitter", "is invalid")
        now = self.clock()
        return {
            **extras,
            "id": self.store.new_id("ticket"), "external_id": _opt_str(body, "external_id", "External ID"),
            "subject": subject, "description": text, "status": status, "priority": priority,
            "type": ttype, "requester_id": requester_id,
            "submitter_id": submitter_id or self._agent_user_id(agent_email) or requester_id,
            "assignee_id": assignee_id, "organization_id": org_id,
            "group_id": _opt_int(body, "group_id", "Group"), "tags": _str_list(body, "tags", "Tags"),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": now, "updated_at": now,
        }

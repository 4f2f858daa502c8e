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
from services.demo.zendesk.records import TICKET_PRIORITIES, TICKET_STATUSES, TICKET_TYPES, Record
from services.demo.zendesk.serializers import render_ticket


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
        return JSONResponse({"tickets": items, **page.body})

    async def show_ticket(self, request: Request) -> Response:
        tid = _path_id(request, "ticket_id")
        with self.store.lock:
            ticket = self.store.tickets.get(tid)
            if ticket is None:
                raise record_not_found()
            return JSONResponse({"ticket": render_ticket(self.store, ticket, _base(request))})

    async def create_ticket(self, request: Request) -> Response:
        body = await _wrapped_body(request, "ticket")
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

    def _new_ticket(self, body: dict[str, Any], agent_email: str | None) -> Record:
        comment = body.get("comment")
        text = None
        if isinstance(comment, dict):
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
        status = _opt_str(body, "status", "Status") or ("open" if assignee_id else "new")
        if status not in TICKET_STATUSES:
            raise invalid_value("status", "Status", "is not valid")
        subject = _opt_str(body, "subject", "Subject")
        if not subject:
            subject = text.strip().splitlines()[0][:80]
        now = self.clock()
        return {
            "id": self.store.new_id("ticket"), "external_id": _opt_str(body, "external_id", "External ID"),
            "subject": subject, "description": text, "status": status, "priority": priority,
            "type": ttype, "requester_id": requester_id,
            "submitter_id": self._agent_user_id(agent_email) or requester_id,
            "assignee_id": assignee_id, "organization_id": org_id,
            "group_id": _opt_int(body, "group_id", "Group"), "tags": _str_list(body, "tags", "Tags"),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": now, "updated_at": now,
        }

"""``/api/v2/users``: list (by role, external id), show and create."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.zendesk.api_base import ApiBase, _base, _path_id
from services.demo.zendesk.bodies import _opt_int, _opt_str, _str_list, _wrapped_body
from services.demo.zendesk.errors import invalid_value, record_not_found
from services.demo.zendesk.pagination import list_page
from services.demo.zendesk.records import Record
from services.demo.zendesk.serializers import render_user

USER_ROLES = ("end-user", "agent", "admin")


class UsersApi(ApiBase):
    """The user endpoints."""

    async def list_users(self, request: Request) -> Response:
        roles = set(request.query_params.getlist("role[]"))
        if request.query_params.get("role"):
            roles.add(request.query_params["role"])
        external_id = request.query_params.get("external_id")
        with self.store.lock:
            ids = self.ix.user_ids.current()
            if roles or external_id:
                users = self.store.users
                ids = [i for i in ids
                       if (not roles or (users[i].get("role") or "end-user") in roles)
                       and (not external_id or users[i].get("external_id") == external_id)]
            page = list_page(request, ids)
            items = [render_user(self.store, self.store.users[i], _base(request)) for i in page.ids]
        return JSONResponse({"users": items, **page.body})

    async def show_user(self, request: Request) -> Response:
        uid = _path_id(request, "user_id")
        with self.store.lock:
            user = self.store.users.get(uid)
            if user is None:
                raise record_not_found()
            return JSONResponse({"user": render_user(self.store, user, _base(request))})

    async def create_user(self, request: Request) -> Response:
        body = await _wrapped_body(request, "user")
        with self.store.lock:
            user = self._new_user(body)
            self.store.users[user["id"]] = user
            self.ix.user_ids.add(user["id"])
            self.ix.user_emails.add(user["id"])
            rendered = render_user(self.store, user, _base(request))
        request.state.write = True
        return JSONResponse({"user": rendered}, status_code=201, headers={"Location": rendered["url"]})

    def _new_user(self, body: dict[str, Any]) -> Record:
        name = _opt_str(body, "name", "Name")
        if not name or not name.strip():
            raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
        email = _opt_str(body, "email", "Email")
        if email is not None:
            email = email.strip()
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise invalid_value("email", "Email", f"{email} is not properly formatted", "InvalidFormat")
            if self.ix.user_emails.get(email.lower()):
                raise invalid_value("email", "Email", f"{email} is already being used by another user",
                                    "DuplicateValue")
        role = _opt_str(body, "role", "Role") or "end-user"
        if role not in USER_ROLES:
            raise invalid_value("role", "Role", "is not valid")
        org_id = _opt_int(body, "organization_id", "Organization")
        if org_id is not None and org_id not in self.store.organizations:
            raise invalid_value("organization_id", "Organization", "is invalid")
        now = self.clock()
        return {
            "id": self.store.new_id("user"), "name": name.strip(), "email": email, "role": role,
            "organization_id": org_id, "external_id": _opt_str(body, "external_id", "External ID"),
            "phone": _opt_str(body, "phone", "Phone"), "tags": _str_list(body, "tags", "Tags"),
            "active": True, "verified": bool(body.get("verified", False)),
            "created_at": now, "updated_at": now,
        }

"""``/api/v2/users``: list (by role, external id), show and create."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.zendesk.api_base import ApiBase, _base, _path_id
from services.demo.zendesk.bodies import _opt_int, _opt_str, _str_list, _wrapped_body
from services.demo.zendesk.errors import invalid_value, record_not_found
from services.demo.zendesk.pagination import _int_param, list_page
from services.demo.zendesk.params import check_body_types, operation
from services.demo.zendesk.records import Record
from services.demo.zendesk.serializers import render_user

USER_ROLES = ("end-user", "agent", "admin")
CREATE_USER = "POST /api/v2/users"
#: the user object's writable properties (the spec's ``UserForAdmin`` less the read-only ones):
#: a create takes and answers them; name, e-mail, role, organization, external id, phone, tags and
#: verified are read and checked one by one
USER_WRITABLE = ("alias", "custom_role_id", "default_group_id", "details", "locale", "locale_id", "moderator",
                 "notes", "only_private_comments", "photo", "remote_photo_url", "restricted_agent",
                 "shared_phone_number", "signature", "suspended", "ticket_restriction", "time_zone",
                 "user_fields")
#: the types a create checks: the spec's create input (``UserInput``) and the user object's
#: writable properties (``UserForAdmin``)
USER_PROPERTIES: dict[str, dict[str, Any]] = {
    **{key: {"type": kind} for key, kind in (
        ("alias", "string"), ("custom_role_id", "integer"), ("default_group_id", "integer"),
        ("details", "string"), ("locale", "string"), ("locale_id", "integer"), ("moderator", "boolean"),
        ("notes", "string"), ("only_private_comments", "boolean"), ("photo", "object"),
        ("remote_photo_url", "string"), ("restricted_agent", "boolean"), ("shared_phone_number", "boolean"),
        ("signature", "string"), ("suspended", "boolean"), ("ticket_restriction", "string"),
        ("time_zone", "string"), ("user_fields", "object"), ("verified", "boolean"), ("phone", "string"),
        ("tags", "array"))},
    **operation(CREATE_USER)["body"]["properties"],
}


def _int_query(request: Request, name: str) -> int | None:
    if not request.query_params.get(name):
        return None
    return _int_param(request, name, 0)


class UsersApi(ApiBase):
    """The user endpoints."""

    async def list_users(self, request: Request) -> Response:
        roles = set(request.query_params.getlist("role[]"))
        if request.query_params.get("role"):
            roles.add(request.query_params["role"])
        external_id = request.query_params.get("external_id")
        permission_set = _int_query(request, "permission_set")
        with self.store.lock:
            ids = self.ix.user_ids.current()
            if roles or external_id or permission_set is not None:
                users = self.store.users
                wanted = external_id.lower() if external_id else None  # external ids ignore case
                ids = [i for i in ids
                       if (not roles or (users[i].get("role") or "end-user") in roles)
                       and (wanted is None or str(users[i].get("external_id") or "").lower() == wanted)
                       and (permission_set is None or users[i].get("custom_role_id") == permission_set)]
            page = list_page(request, ids)
            items = [render_user(self.store, self.store.users[i], _base(request)) for i in page.ids]
        return JSONResponse({"users": items, **page.body})

    async def show_me(self, request: Request) -> Response:
        """``GET /api/v2/users/me``: the authenticated account (its role, role type and custom
        role tell what it may do)."""
        extra = getattr(request.state, "agent_user", None)
        email = getattr(request.state, "agent_email", None)
        with self.store.lock:
            user = extra if isinstance(extra, dict) else next(
                (u for u in self.store.users.values() if u.get("email") == email), None)
            if user is None:
                raise record_not_found()
            return JSONResponse({"user": render_user(self.store, user, _base(request))})

    async def show_user(self, request: Request) -> Response:
        uid = _path_id(request, "user_id")
        with self.store.lock:
            user = self.store.users.get(uid)
            if user is None:
                raise record_not_found()
            return JSONResponse({"user": render_user(self.store, user, _base(request))})

    async def create_user(self, request: Request) -> Response:
        body = await _wrapped_body(request, "user")
        check_body_types(CREATE_USER, body, USER_PROPERTIES)
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
        identities = body.get("identities") or []
        if email is None:  # the first e-mail identity is the primary address
            email = next((str(i["value"]) for i in identities
                          if isinstance(i, dict) and i.get("type") == "email" and i.get("value")), None)
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
        if org_id is None and isinstance(body.get("organization"), dict):
            org_id = self._organization_named(body["organization"])
        now = self.clock()
        user: Record = {key: body[key] for key in USER_WRITABLE if body.get(key) is not None}
        user.update({
            "id": self.store.new_id("user"), "name": name.strip(), "email": email, "role": role,
            "organization_id": org_id, "external_id": _opt_str(body, "external_id", "External ID"),
            "phone": _opt_str(body, "phone", "Phone"), "tags": _str_list(body, "tags", "Tags"),
            "active": True, "verified": bool(body.get("verified", False)),
            "created_at": now, "updated_at": now,
        })
        if role == "end-user":  # agent-only settings do not apply to end users
            for key in ("custom_role_id", "restricted_agent", "moderator", "only_private_comments"):
                user.pop(key, None)
        return user

    def _organization_named(self, given: dict[str, Any]) -> int:
        """The organization ``{"name": ...}`` names (case-insensitive), created when there is none,
        as Zendesk does for a user created with ``organization``."""
        name = given.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid_value("organization", "Organization", "name cannot be blank", "BlankValue")
        found = self.ix.org_names.get(name.strip().lower())
        if found:
            return min(found)
        now = self.clock()
        org: Record = {
            "id": self.store.new_id("organization"), "name": name.strip(), "external_id": None,
            "domain_names": [], "details": None, "notes": None, "group_id": None, "shared_tickets": False,
            "shared_comments": False, "tags": [],
            "organization_fields": {f["key"]: None for f in self.store.organization_fields},
            "created_at": now, "updated_at": now,
        }
        self.store.add_organization(org)
        self.ix.org_ids.add(org["id"])
        self.ix.org_names.add(org["id"])
        return int(org["id"])

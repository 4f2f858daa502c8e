"""``/api/v2/organizations``: list, show, create, update, search by external id or name, and the
organization fields (with the validation of custom field values)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.store import SupportStore
from services.demo.zendesk.api_base import ApiBase, _base, _path_id
from services.demo.zendesk.bodies import _opt_bool, _opt_int, _opt_str, _str_list, _wrapped_body
from services.demo.zendesk.errors import bad_request, invalid_value, record_invalid, record_not_found
from services.demo.zendesk.pagination import list_page
from services.demo.zendesk.params import check_body_types
from services.demo.zendesk.records import Record
from services.demo.zendesk.serializers import render_organization, render_organization_field
from services.demo.zendesk.timestamps import EPOCH, _parse_when

CREATE_ORGANIZATION = "POST /api/v2/organizations"


def validate_organization_fields(store: SupportStore, given: Any) -> dict[str, Any]:
    """Normalize custom field values (unknown keys are ignored, as Zendesk does)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise invalid_value("organization_fields", "Organization fields", "must be an object")
    defs = {f["key"]: f for f in store.organization_fields}
    out: dict[str, Any] = {}
    for key, value in given.items():
        fdef = defs.get(key)
        if fdef is None:
            continue
        title = str(fdef.get("title") or key)
        if value is None or value == "":
            out[key] = None
            continue
        ftype = fdef["type"]
        if ftype == "dropdown":
            if value not in fdef.get("options", []):
                raise invalid_value(key, title, f"{value!r} is not a valid option")
            out[key] = value
        elif ftype == "date":
            when = _parse_when(value) if isinstance(value, str) else None
            if when is None:
                raise invalid_value(key, title, "is not a valid date (YYYY-MM-DD)")
            out[key] = when.date().isoformat()
        elif ftype in ("integer", "decimal"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid_value(key, title, "is not a number")
            out[key] = value
        elif ftype == "checkbox":
            if not isinstance(value, bool):
                raise invalid_value(key, title, "is not a boolean")
            out[key] = value
        else:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise invalid_value(key, title, "is invalid")
            out[key] = str(value)
    return out


class OrganizationsApi(ApiBase):
    """The organization and organization field endpoints."""

    async def list_organizations(self, request: Request) -> Response:
        with self.store.lock:
            page = list_page(request, self.ix.org_ids.current())
            items = [render_organization(self.store, self.store.organizations[i], _base(request))
                     for i in page.ids]
        return JSONResponse({"organizations": items, **page.body})

    async def show_organization(self, request: Request) -> Response:
        oid = _path_id(request, "organization_id")
        with self.store.lock:
            org = self.store.organizations.get(oid)
            if org is None:
                raise record_not_found()
            return JSONResponse({"organization": render_organization(self.store, org, _base(request))})

    async def create_organization(self, request: Request) -> Response:
        body = await _wrapped_body(request, "organization")
        check_body_types(CREATE_ORGANIZATION, body)
        with self.store.lock:
            org = self._new_organization(body)
            self.store.add_organization(org)
            self.ix.org_ids.add(org["id"])
            self.ix.org_names.add(org["id"])
            rendered = render_organization(self.store, org, _base(request))
        request.state.write = True
        return JSONResponse({"organization": rendered}, status_code=201,
                            headers={"Location": rendered["url"]})

    def _new_organization(self, body: dict[str, Any]) -> Record:
        name = _opt_str(body, "name", "Name")
        if not name or not name.strip():
            raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
        name = name.strip()
        self._check_org_unique(name, _opt_str(body, "external_id", "External ID"), None)
        now = self.clock()
        fields_ = {f["key"]: None for f in self.store.organization_fields}
        fields_.update(validate_organization_fields(self.store, body.get("organization_fields")))
        return {
            "id": self.store.new_id("organization"),
            "name": name,
            "external_id": _opt_str(body, "external_id", "External ID") or None,
            "domain_names": _str_list(body, "domain_names", "Domain names"),
            "details": _opt_str(body, "details", "Details"),
            "notes": _opt_str(body, "notes", "Notes"),
            "group_id": _opt_int(body, "group_id", "Group"),
            "shared_tickets": _opt_bool(body, "shared_tickets", "Shared tickets", False),
            "shared_comments": _opt_bool(body, "shared_comments", "Shared comments", False),
            "tags": _str_list(body, "tags", "Tags"),
            "organization_fields": fields_,
            "created_at": now,
            "updated_at": now,
        }

    def _check_org_unique(self, name: str | None, external_id: str | None, own_id: int | None) -> None:
        details: dict[str, list[dict[str, str]]] = {}
        if name is not None and (self.ix.org_names.get(name.strip().lower()) - {own_id}):
            details["name"] = [{"description": "Name: has already been taken", "error": "DuplicateValue"}]
        if external_id:
            holder = self.store.orgs_by_external_id.get(external_id)
            if holder is not None and holder != own_id and holder in self.store.organizations:
                details["external_id"] = [{"description": "External ID: has already been taken",
                                           "error": "DuplicateValue"}]
        if details:
            raise record_invalid(details)

    async def update_organization(self, request: Request) -> Response:
        oid = _path_id(request, "organization_id")
        body = await _wrapped_body(request, "organization")
        # the spec gives the update no body schema: it takes the organization object, as create does
        check_body_types(CREATE_ORGANIZATION, body)
        with self.store.lock:
            org = self.store.organizations.get(oid)
            if org is None:
                raise record_not_found()
            old = dict(org)
            changes = self._organization_changes(org, body)
            org.update(changes)
            org["updated_at"] = max(self.clock(), org.get("updated_at") or EPOCH)
            if "external_id" in changes and old.get("external_id") != org.get("external_id"):
                if old.get("external_id") and self.store.orgs_by_external_id.get(old["external_id"]) == oid:
                    del self.store.orgs_by_external_id[old["external_id"]]
                if org.get("external_id"):
                    self.store.orgs_by_external_id[org["external_id"]] = oid
            if "name" in changes:
                self.ix.org_names.replace(oid, old)
            rendered = render_organization(self.store, org, _base(request))
        request.state.write = True
        return JSONResponse({"organization": rendered})

    def _organization_changes(self, org: Record, body: dict[str, Any]) -> Record:
        changes: Record = {}
        if "name" in body:
            name = _opt_str(body, "name", "Name")
            if not name or not name.strip():
                raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
            changes["name"] = name.strip()
        if "external_id" in body:
            changes["external_id"] = _opt_str(body, "external_id", "External ID") or None
        self._check_org_unique(changes.get("name"), changes.get("external_id"), org["id"])
        for key, title in (("details", "Details"), ("notes", "Notes")):
            if key in body:
                changes[key] = _opt_str(body, key, title)
        for key, title in (("domain_names", "Domain names"), ("tags", "Tags")):
            if key in body:
                changes[key] = _str_list(body, key, title)
        if "group_id" in body:
            changes["group_id"] = _opt_int(body, "group_id", "Group")
        for key, title in (("shared_tickets", "Shared tickets"), ("shared_comments", "Shared comments")):
            if key in body:
                changes[key] = _opt_bool(body, key, title, bool(org.get(key)))
        if "organization_fields" in body:
            merged = dict(org.get("organization_fields") or {})
            merged.update(validate_organization_fields(self.store, body["organization_fields"]))
            changes["organization_fields"] = merged
        return changes

    async def search_organizations(self, request: Request) -> Response:
        external_id = request.query_params.get("external_id")
        name = request.query_params.get("name")
        if not external_id and not name:
            raise bad_request("Provide external_id or name", "InvalidSearch")
        with self.store.lock:
            if external_id:
                rid = self.store.orgs_by_external_id.get(external_id)
                if rid is None:  # external ids are case-insensitive
                    wanted = external_id.lower()
                    ids = sorted(oid for oid, o in self.store.organizations.items()
                                 if (o.get("external_id") or "").lower() == wanted)
                else:
                    ids = [rid] if rid in self.store.organizations else []
            else:
                ids = sorted(self.ix.org_names.get((name or "").strip().lower()))
            items = [render_organization(self.store, self.store.organizations[i], _base(request)) for i in ids]
        return JSONResponse({"organizations": items, "next_page": None, "previous_page": None,
                             "count": len(items)})

    async def list_organization_fields(self, request: Request) -> Response:
        """The fields in their configured order, paged as every list (cursor with ``page[size]``,
        ``page[after]``, ``page[before]``; offset with ``page``, ``per_page``)."""
        with self.store.lock:
            for fdef in self.store.organization_fields:
                if "id" not in fdef:
                    fdef["id"] = self.store.new_id("organization_field")
            position = {int(f["id"]): i for i, f in enumerate(self.store.organization_fields)}
            page = list_page(request, sorted(position))
            fields_ = self.store.organization_fields
            items = [render_organization_field(fields_[position[fid]], position[fid], _base(request))
                     for fid in sorted(page.ids, key=position.__getitem__)]
        return JSONResponse({"organization_fields": items, **page.body})

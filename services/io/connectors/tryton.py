"""Tryton ERP connector: parties, products, customer invoices and sale subscriptions over
trytond's JSON-RPC (facts in ``shared/specs/tryton/README.md``, verified against 8.2).

:class:`TrytonConnector` is built in three layers, one module each:
:mod:`services.io.connectors.tryton_session` (login, context, the RPC call, the error
envelopes and the keyset-paged reads), :mod:`services.io.connectors.tryton_writes` (the F5
actions) and this module (the refreshes and the id listing); the payload models and their
mapping onto the canonical model live in :mod:`services.io.connectors.tryton_payloads`.

Refreshing: a full refresh reads every model (``search_read`` pages of ``PAGE_SIZE`` ordered by
id with a keyset clause). The incremental refresh asks each model for
``["OR", ["create_date", ">", W], ["write_date", ">", W]]`` with W = the model's watermark minus
:data:`OVERLAP` (Tryton stamps records with the transaction's *start* time, so a long
transaction can commit records older than the watermark), de-duplicates against what is
already known, and re-reads the child records (identifiers, addresses, e-mails) of every
party that changed or whose children changed. With nothing changed it costs one request per
model (8).

A record that does not validate or map (an unknown state, a wrong type, a date that does not
decode) or an id a page lists twice with different content is quarantined
(``SystemData.quarantined``; kind ``customer``/``plan``/``invoice``/``subscription`` for what
becomes a record, the model's name for the records that only help build one — a party whose
identifier is quarantined is read without it) and the refresh goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

from services.compute import run_cpu
from services.core.domain import CreditNote, Customer, Invoice, System
from services.core.errors import ProtocolError
from services.core.sysdata import (
    Delta,
    Intake,
    Kind,
    Progress,
    ProgressCallback,
    RefreshResult,
    SystemData,
    no_progress,
    release,
)
from services.io.config import SystemConnection
from services.io.connectors.base import Clock, gather_or_cancel, quarantine, utc_now
from services.io.connectors.tryton_credits import TrytonCredits
from services.io.connectors.tryton_payloads import (
    ADDRESS,
    COMPANY,
    CONTACT,
    IDENTIFIER,
    INVOICE,
    INVOICE_LINE,
    INVOICE_TAX,
    PARTY,
    PHASES,
    PRODUCT,
    SERVICE,
    SUB_LINE,
    SUBSCRIPTION,
    TCompany,
    TInvoice,
    TInvoiceLine,
    TInvoiceTax,
    TParty,
    _customer_id,
    aware,
    map_credit_note,
    map_invoice,
    map_party,
    map_product,
    map_subscription,
    naive,
)
from services.io.connectors.tryton_session import (
    BOTH_ACTIVE,
    ORDER_BY_ID,
    _Rows,
    model_kind,
    tryton_error_parser,
)
from services.io.http import DEFAULT_POLICIES, HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

#: re-read records stamped this long before the watermark (transaction start times)
OVERLAP = timedelta(minutes=2)
CURSOR_VERSION = 1
#: the clause that selects what a full refresh reads of each model
BASE_DOMAIN: dict[str, list[Any]] = {
    INVOICE: [["type", "=", "out"]],
}
#: models whose changes the incremental refresh asks for (one request each when idle)
TRACKED = (PARTY, IDENTIFIER, ADDRESS, CONTACT, PRODUCT, INVOICE, SUBSCRIPTION, SUB_LINE)


def _changed_domain(since: datetime | None) -> list[Any]:
    if since is None:
        return []
    w = naive(since)
    return [["OR", ["create_date", ">", w], ["write_date", ">", w]]]


def _recent(seen: dict[str, str], rows: _Rows, mark: datetime) -> dict[str, str]:
    """Record id -> stamp of what lies inside the overlap window below the watermark ``mark``
    (what the next incremental refresh will read again): ``seen`` plus ``rows``, pruned."""
    floor = naive(mark) - OVERLAP
    merged = {**seen, **{str(rid): rec.stamp.isoformat() for rid, rec in rows.records.items()}}
    out: dict[str, str] = {}
    for rid, iso in merged.items():
        try:
            if datetime.fromisoformat(iso) > floor:
                out[rid] = iso
        except (TypeError, ValueError):
            continue
    return out


class TrytonConnector(TrytonCredits):
    """Tryton ERP connector: refreshes and id listing here, the session and the reads in
    :class:`~services.io.connectors.tryton_session.TrytonSession`, the writes in
    :class:`~services.io.connectors.tryton_writes.TrytonWrites` and
    :class:`~services.io.connectors.tryton_credits.TrytonCredits`."""

    @classmethod
    def create(cls, conn: SystemConnection, *, policy: HttpPolicy | None = None,
               transport: Any = None, clock: Clock = utc_now) -> TrytonConnector:
        client = ResilientClient(System.ERP, conn.url, policy=policy or DEFAULT_POLICIES[System.ERP],
                                 headers={"Accept": "application/json", "User-Agent": "SyncDesk"},
                                 error_parser=tryton_error_parser, transport=transport)
        return cls(conn, client, clock)

    # -- refresh ------------------------------------------------------------------------
    async def _companies(self) -> dict[int, TCompany]:
        rows = await self.search_read_all(COMPANY, [])
        return dict(rows.records)

    def _customers(self, parties: dict[int, Any], identifiers: _Rows, addresses: _Rows, contacts: _Rows,
                   company_parties: set[int], intake: Intake) -> dict[str, Customer]:
        out: dict[str, Customer] = {}
        for pid, p in parties.items():
            if pid in company_parties or not p.active:
                continue
            try:
                out[str(pid)] = map_party(p, identifiers.records, addresses.records, contacts.records)
            except Exception as exc:
                quarantine(intake, self.system, Kind.CUSTOMER, pid, exc)
        return out

    async def get_credit_note(self, invoice_id: int) -> tuple[Invoice, CreditNote]:
        """ERP credit note ``invoice_id`` read back (an action's verification): its mapping as an
        invoice and as the :class:`CreditNote` of the invoice its lines credit."""
        inv = await self.get_invoice(invoice_id)
        credited = await self._credited([invoice_id], None)
        return inv, map_credit_note(inv, credited.get(invoice_id))

    async def _credited(self, credit_notes: list[int], intake: Intake | None) -> dict[int, int | None]:
        """Credit note id -> the invoice it credits (its lines' ``origin`` lines' invoice; the
        first line that names one), ``None`` when no line does: two reads of invoice lines."""
        if not credit_notes:
            return {}
        lines = await self.read_ids(INVOICE_LINE, credit_notes, field="invoice", intake=intake)
        origin: dict[int, int] = {}
        for line in sorted(lines.records.values(), key=lambda ln: ln.id):
            credited = line.credited_line if isinstance(line, TInvoiceLine) else None
            if line.invoice is not None and credited is not None:
                origin.setdefault(line.invoice, credited)
        originals = await self.read_ids(INVOICE_LINE, set(origin.values()), intake=intake) if origin else None
        out: dict[int, int | None] = dict.fromkeys(credit_notes)
        for cn, lid in origin.items():
            original = originals.records.get(lid) if originals is not None else None
            out[cn] = original.invoice if original is not None else None
        return out

    def _map_invoices(self, invoices: dict[int, Any], taxes: _Rows | None, credited: dict[int, int | None],
                      intake: Intake) -> tuple[dict[str, Invoice], dict[str, CreditNote]]:
        """The invoices (with their taxes) and, of those that are credit notes, their :class:`CreditNote`."""
        by_invoice: dict[int, list[TInvoiceTax]] = {}
        if taxes is not None:
            for t in taxes.records.values():
                by_invoice.setdefault(t.invoice, []).append(t)
        mapped: dict[str, Invoice] = {}
        notes: dict[str, CreditNote] = {}
        for inv in invoices.values():
            try:
                record = map_invoice(inv, by_invoice.get(inv.id, []) if taxes is not None else None)
                mapped[str(inv.id)] = record
                if isinstance(inv, TInvoice) and inv.is_credit_note:
                    notes[str(inv.id)] = map_credit_note(record, credited.get(inv.id))
            except Exception as exc:
                quarantine(intake, self.system, Kind.INVOICE, inv.id, exc)
        return mapped, notes

    def _map_all(self, rows: dict[str, _Rows], company_parties: set[int], intake: Intake,
                 credited: dict[int, int | None] | None = None) -> SystemData:
        data = SystemData(self.system)
        data.customers = self._customers(rows[PARTY].records, rows[IDENTIFIER], rows[ADDRESS], rows[CONTACT],
                                         company_parties, intake)
        for product in rows[PRODUCT].records.values():
            try:
                plan = map_product(product)
            except Exception as exc:
                quarantine(intake, self.system, Kind.PLAN, product.id, exc)
                continue
            if plan is not None:
                data.plans[str(product.id)] = plan
        data.invoices, data.credit_notes = self._map_invoices(rows[INVOICE].records, rows.get(INVOICE_TAX),
                                                              credited or {}, intake)
        for sub in rows[SUBSCRIPTION].records.values():
            try:
                data.subscriptions[str(sub.id)] = map_subscription(sub, rows[SUB_LINE].records,
                                                                   rows[SERVICE].records)
            except Exception as exc:
                quarantine(intake, self.system, Kind.SUBSCRIPTION, sub.id, exc)
        return intake.into(data)

    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult:
        before = self.requests_made
        companies = await self._companies()
        company_parties = {c.party for c in companies.values()}
        models = (PARTY, IDENTIFIER, ADDRESS, CONTACT, PRODUCT, INVOICE, SUBSCRIPTION, SUB_LINE, SERVICE, INVOICE_TAX)
        intake = Intake(self.system)
        results = await gather_or_cancel(*(self.search_read_all(m, BASE_DOMAIN.get(m, []), progress=progress,
                                                                intake=intake)
                                           for m in models))
        rows = dict(zip(models, results, strict=True))
        marks = {m: aware(r.newest) for m, r in rows.items() if m in TRACKED and r.newest is not None}
        credited = await self._credited([i for i, inv in rows[INVOICE].records.items()
                                         if isinstance(inv, TInvoice) and inv.is_credit_note], intake)

        def finish() -> tuple[SystemData, dict[str, dict[str, str]]]:
            # mapping every record is CPU work, and so is freeing the validated pages: off the
            # event loop (it also draws the UI)
            data = self._map_all(rows, company_parties, intake, credited)
            recent = {m: _recent({}, rows[m], marks[m]) for m in marks}
            release(*(r.records for r in rows.values()))
            return data, recent

        data, recent = await run_cpu(finish)
        cursor = {"version": CURSOR_VERSION, "watermarks": {m: v.isoformat() for m, v in sorted(marks.items())},
                  "recent": recent, "company_parties": sorted(company_parties)}
        progress(Progress(self.system, "mapped", data.count(), data.count()))
        return RefreshResult(self.system, data, None, cursor, self.clock(), self.requests_made - before)

    async def incremental_refresh(self, cursor: dict[str, Any], known: SystemData,
                                  progress: ProgressCallback = no_progress) -> RefreshResult:
        raw_marks = cursor.get("watermarks") if isinstance(cursor, dict) else None
        if cursor.get("version") != CURSOR_VERSION or not isinstance(raw_marks, dict):
            log.info("erp: no usable cursor; full refresh")
            return await self.full_refresh(progress)
        marks: dict[str, datetime] = {}
        for model, value in raw_marks.items():
            try:
                marks[model] = aware(datetime.fromisoformat(str(value)))
            except ValueError:
                continue
        before = self.requests_made
        parties = cursor.get("company_parties")
        if isinstance(parties, list) and all(isinstance(p, int) for p in parties):
            company_parties = set(parties)
        else:
            company_parties = {c.party for c in (await self._companies()).values()}

        def since(model: str) -> datetime | None:
            mark = marks.get(model)
            return None if mark is None else mark - OVERLAP

        intake = Intake(self.system)

        def changes(model: str) -> Awaitable[_Rows]:
            domain = _changed_domain(since(model)) + BASE_DOMAIN.get(model, [])
            if model in (PARTY, PRODUCT):  # a deactivation is a change (a deletion) too
                domain.append(BOTH_ACTIVE)
            return self.search_read_all(model, domain, progress=progress, phase=f"changed {PHASES[model]}",
                                        intake=intake)

        results = await gather_or_cancel(*(changes(m) for m in TRACKED))
        changed = dict(zip(TRACKED, results, strict=True))
        party_mark = marks.get(PARTY)  # the previous refresh's, before this one moves it

        def held_before(party: TParty) -> bool:
            """Whether invoices or subscriptions of ``party`` (a party the snapshot does not
            hold as a customer: inactive at the previous refresh, or new since) may be in the
            snapshot: only if it existed then. A party created since has none there."""
            return party_mark is None or aware(party.create_date) <= party_mark
        raw_recent = cursor.get("recent")
        old_recent: dict[str, Any] = raw_recent if isinstance(raw_recent, dict) else {}
        recent: dict[str, dict[str, str]] = {}
        for model, rows in changed.items():
            if rows.newest is not None:
                stamp = aware(rows.newest)
                if model not in marks or stamp > marks[model]:
                    marks[model] = stamp
            raw_seen = old_recent.get(model)
            seen: dict[str, str] = raw_seen if isinstance(raw_seen, dict) else {}
            if model in marks:
                recent[model] = _recent(seen, rows, marks[model])
            # de-duplicate: what the overlap window re-read unchanged is no change
            rows.records = {rid: rec for rid, rec in rows.records.items()
                            if seen.get(str(rid)) != rec.stamp.isoformat()}

        upserts = SystemData(self.system)
        deletions: dict[Kind, set[str]] = {}

        def delete(kind: Kind, key: str) -> None:
            if key in known.table(kind):
                deletions.setdefault(kind, set()).add(key)

        # parties: changed ones, and those whose identifiers / addresses / e-mails changed
        party_rows = changed[PARTY]
        affected = set(party_rows.records)
        for model in (IDENTIFIER, ADDRESS, CONTACT):
            affected |= {child.party for child in changed[model].records.values()}
        missing = affected - set(party_rows.records)
        if missing:
            party_rows.merge(await self.read_ids(PARTY, missing, [BOTH_ACTIVE], intake=intake))
        relinked: set[int] = set()
        #: quarantine keys of child records read fine (their old entries are dropped)
        readable: set[tuple[str, str]] = set()
        live = {pid for pid, p in party_rows.records.items() if p.active and pid not in company_parties}
        if live:
            idents, addrs, mails = await gather_or_cancel(
                self.read_ids(IDENTIFIER, live, field="party", intake=intake),
                self.read_ids(ADDRESS, live, field="party", intake=intake),
                self.read_ids(CONTACT, live, field="party", intake=intake))
            for children in (idents, addrs, mails):
                readable |= {(model_kind(children.model), str(i)) for i in children.records}
            customers = self._customers({p: party_rows.records[p] for p in live}, idents, addrs, mails,
                                        company_parties, intake)
            for key, customer in customers.items():
                old = known.customers.get(key)
                if old != customer:
                    upserts.customers[key] = customer
                # a changed code moves the party's invoices and subscriptions to another
                # customer; so may a reactivated party's (its code may have changed while it
                # was inactive, out of sight)
                if (old.customer_id != customer.customer_id if old is not None
                        else held_before(party_rows.records[int(key)])):
                    relinked.add(int(key))
        for pid in set(party_rows.records) - live:
            delete(Kind.CUSTOMER, str(pid))
            # deactivated, or changed while inactive: its invoices and subscriptions stay in the
            # ERP and carry the code it has now, as a full refresh maps them
            party = party_rows.records[pid]
            old = known.customers.get(str(pid))
            if pid not in company_parties and (old.customer_id != _customer_id(party.code) if old is not None
                                               else held_before(party)):
                relinked.add(pid)

        for product in changed[PRODUCT].records.values():
            try:
                plan = map_product(product) if product.active else None
            except Exception as exc:
                quarantine(intake, self.system, Kind.PLAN, product.id, exc)
                continue
            if plan is None:
                delete(Kind.PLAN, str(product.id))
            elif known.plans.get(plan.ref.id) != plan:
                upserts.plans[plan.ref.id] = plan

        # invoices (and those of parties whose code changed: their customer id moved)
        invoices = changed[INVOICE]
        subs = changed[SUBSCRIPTION]
        if relinked:
            again = await gather_or_cancel(
                self.read_ids(INVOICE, relinked, BASE_DOMAIN[INVOICE], field="party", intake=intake),
                self.read_ids(SUBSCRIPTION, relinked, field="party", intake=intake))
            invoices.merge(again[0])
            subs.merge(again[1])
        if invoices.records:
            # their taxes (and, for credit notes, the invoice each credits) read again with them
            taxes = await self.read_ids(INVOICE_TAX, invoices.records, field="invoice", intake=intake)
            readable |= {(model_kind(INVOICE_TAX), str(i)) for i in taxes.records}
            credited = await self._credited([i for i, inv in invoices.records.items()
                                             if isinstance(inv, TInvoice) and inv.is_credit_note], intake)
            mapped_invoices, notes = self._map_invoices(invoices.records, taxes, credited, intake)
            for key, mapped in mapped_invoices.items():
                if known.invoices.get(key) != mapped:
                    upserts.invoices[key] = mapped
                if key in notes:
                    if known.credit_notes.get(key) != notes[key]:
                        upserts.credit_notes[key] = notes[key]
                elif key in known.credit_notes:
                    delete(Kind.CREDIT_NOTE, key)

        # subscriptions: changed ones and those whose lines changed
        affected_subs = set(subs.records) | {line.subscription for line in changed[SUB_LINE].records.values()}
        missing = affected_subs - set(subs.records)
        if missing:
            subs.merge(await self.read_ids(SUBSCRIPTION, missing, intake=intake))
        if subs.records:
            lines = await self.read_ids(SUB_LINE, subs.records, field="subscription", intake=intake)
            services = await self.read_ids(SERVICE, {line.service for line in lines.records.values()}, intake=intake)
            for children in (lines, services):
                readable |= {(model_kind(children.model), str(i)) for i in children.records}
            for sub in subs.records.values():
                try:
                    mapped_sub = map_subscription(sub, lines.records, services.records)
                except Exception as exc:
                    quarantine(intake, self.system, Kind.SUBSCRIPTION, sub.id, exc)
                    continue
                if known.subscriptions.get(mapped_sub.ref.id) != mapped_sub:
                    upserts.subscriptions[mapped_sub.ref.id] = mapped_sub

        new_cursor = {"version": CURSOR_VERSION,
                      "watermarks": {m: v.isoformat() for m, v in sorted(marks.items())},
                      "recent": recent, "company_parties": sorted(company_parties)}
        # records read fine this time settle their old quarantine entries even when unchanged
        # (an entry of a record the snapshot still holds in its previous version)
        for model, kind in ((PARTY, Kind.CUSTOMER), (PRODUCT, Kind.PLAN), (INVOICE, Kind.INVOICE),
                            (SUBSCRIPTION, Kind.SUBSCRIPTION)):
            rows_read = {PARTY: party_rows, INVOICE: invoices, SUBSCRIPTION: subs}.get(model, changed[model])
            readable |= {(kind.value, str(i)) for i in rows_read.records}
        readable -= set(intake.quarantined)
        delta = Delta(intake.into(upserts), deletions, readable)
        progress(Progress(self.system, "mapped", delta.count(), delta.count()))
        return RefreshResult(self.system, None, delta, new_cursor, self.clock(), self.requests_made - before)

    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]:
        """Ids of active parties (without the company's), coded products, customer invoices
        and subscriptions: one ``search`` each."""
        async def ids(model: str, domain: list[Any]) -> set[int]:
            operation = f"search {model}"
            found = await self.call(model, "search", domain, 0, None, ORDER_BY_ID, operation=operation, safe=True)
            if not isinstance(found, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in found):
                raise ProtocolError(self.system, operation, f"{model}: search did not answer a list of ids")
            progress(Progress(self.system, f"{PHASES[model]} ids", len(found)))
            return set(found)

        companies = await self._companies()
        parties, products, invoices, subs = await gather_or_cancel(
            ids(PARTY, []), ids(PRODUCT, [["code", "!=", None], ["code", "!=", ""]]),
            ids(INVOICE, BASE_DOMAIN[INVOICE]), ids(SUBSCRIPTION, []))
        parties -= {c.party for c in companies.values()}
        # a credit note is an invoice: one the ERP no longer lists is gone from both tables
        return {Kind.CUSTOMER: {str(i) for i in parties}, Kind.PLAN: {str(i) for i in products},
                Kind.INVOICE: {str(i) for i in invoices}, Kind.SUBSCRIPTION: {str(i) for i in subs},
                Kind.CREDIT_NOTE: {str(i) for i in invoices}}

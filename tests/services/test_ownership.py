"""services.core.ownership: the owner of an exception comes from the configured ownership (the
one the action service enforces), not from the defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from services.core.domain import RULES, ExternalRef, Severity, Side, SyncException, System
from services.core.ownership import RULE_OWNERSHIP_KEY, owner_system, ownership_key
from services.core.reconcile import DEFAULT_OWNERSHIP, ReconcileConfig

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def exception(rule: str, sides: list[Side]) -> SyncException:
    team, fixes = RULES[rule]
    return SyncException(id=f"{rule}:x", rule=rule, severity=Severity.MEDIUM, owner=team, customer_id="cus_1",
                         object_id="x", summary="s", sides=sides, first_seen=NOW, last_seen=NOW, fix_actions=fixes)


def master_drift() -> SyncException:
    """As the reconciler reports it: the ERP side flagged ``owner``."""
    return exception("customer.master_drift", [
        Side(System.ERP, ExternalRef(System.ERP, "party.party", "3"), {"name": "Acme GmbH", "owner": True}),
        Side(System.BILLING, ExternalRef(System.BILLING, "customer", "cus_1"), {"name": "Acme"})])


def amount_mismatch() -> SyncException:
    return exception("invoice.amount_mismatch", [
        Side(System.BILLING, ExternalRef(System.BILLING, "invoice", "in_1"), {"total": "100.00"}),
        Side(System.ERP, ExternalRef(System.ERP, "account.invoice", "1"), {"total": "90.00"})])


def test_every_mapped_rule_and_key_exists() -> None:
    assert set(RULE_OWNERSHIP_KEY) <= set(RULES)
    assert set(RULE_OWNERSHIP_KEY.values()) <= set(DEFAULT_OWNERSHIP)
    assert ownership_key("customer.master_drift") == "customer.name"
    assert ownership_key("customer.unmapped_erp") is None


def test_the_default_configuration_gives_the_catalogue_owners() -> None:
    ownership = ReconcileConfig().ownership
    assert owner_system(master_drift(), ownership) is System.ERP
    assert owner_system(amount_mismatch(), ownership) is System.BILLING


def test_a_custom_configuration_decides_the_owner() -> None:
    custom = {**ReconcileConfig().ownership, "customer.name": System.BILLING, "invoice.content": System.ERP}
    # the configuration wins over the reconciler's owner flag (which only mirrors the default)
    assert owner_system(master_drift(), custom) is System.BILLING
    assert owner_system(amount_mismatch(), custom) is System.ERP


def test_without_a_configured_key_the_flag_then_billing_decide() -> None:
    assert owner_system(master_drift(), {}) is System.ERP  # the side flagged owner
    assert owner_system(amount_mismatch(), {}) is System.BILLING
    unmapped = exception("customer.unmapped_erp", [
        Side(System.BILLING, ExternalRef(System.BILLING, "customer", "cus_1"), {"name": "Acme"}),
        Side(System.ERP, None, {"party": None, "candidates": []})])
    assert owner_system(unmapped, ReconcileConfig().ownership) is System.BILLING  # billing holds the key

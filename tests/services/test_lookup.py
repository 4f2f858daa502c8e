"""Finding a customer by what a user knows (services.core.lookup): a name (case- and
accent-insensitive, partial), any id in any system, an e-mail domain, a unique prefix; several
matches are listed, never guessed."""

from __future__ import annotations

import pytest

from services.core.domain import Customer
from services.core.lookup import CustomerIndex, MatchKind, Via
from services.core.overview import RowFilter, fold
from tests.worlds import E, S, World, ref


def world() -> World:
    w = (World().customer("cus_MNo3yDBSe0KKBI", "Müller Straßenbau GmbH")
         .customer("cus_Blue1", "Blue Robotics Inc.")
         .customer("cus_Blue2", "Blue Harbour Logistics")
         .customer("cus_Zz9", "Zürich Øresund AG"))
    # party ids and organization ids as the real systems number them
    for cid, party, org in (("cus_MNo3yDBSe0KKBI", "30", "360000028"), ("cus_Blue1", "31", "360000029"),
                            ("cus_Blue2", "312", "360000030"), ("cus_Zz9", "4", "361000001")):
        p = w.e.customers.pop(f"p{cid}")
        w.e.customers[party] = Customer(ref(E, "party.party", party), cid, p.name, f"ap@{cid.lower()}.example",
                                        p.tax_id, p.country)
        o = w.s.customers.pop(f"o{cid}")
        w.s.customers[org] = Customer(ref(S, "organization", org), cid, o.name)
        ent = w.s.entitlements.pop(f"o{cid}")
        ent.ref = ref(S, "organization", org)
        w.s.entitlements[org] = ent
    w.b.customers["cus_Blue1"].email = "ops@bluerobotics.example"
    w.b.customers["cus_Blue2"].email = "billing@blueharbour.example"
    w.b.customers["cus_Zz9"].tax_id = "CHE-123.456.789"
    # a party whose code is a customer id billing does not have
    w.e.customers["77"] = Customer(ref(E, "party.party", "77"), "cus_OnlyErp", "Legacy Ventures Ltd", None)
    return w


@pytest.fixture(scope="module")
def index() -> CustomerIndex:
    return CustomerIndex.from_snapshot(world().snapshot())


def found(index: CustomerIndex, query: str) -> tuple[MatchKind, list[str], list[Via]]:
    result = index.find(query)
    return result.kind, result.customer_ids(), [m.via for m in result.matches]


def test_fold_drops_case_and_accents() -> None:
    assert fold("Müller Straßenbau") == "muller strassenbau"
    assert fold("ZÜRICH Øresund") == "zurich oresund"
    assert fold("İstanbul Ｃｏ") == "istanbul co"
    assert fold("plain ascii") == "plain ascii"


@pytest.mark.parametrize("query", ["muller", "MÜLLER strassenbau", "straßenbau", "Muller Strassenbau GmbH"])
def test_a_name_case_and_accent_insensitive_and_partial(index: CustomerIndex, query: str) -> None:
    kind, ids, vias = found(index, query)
    assert ids == ["cus_MNo3yDBSe0KKBI"]
    assert vias == [Via.NAME]
    assert kind in (MatchKind.EXACT, MatchKind.PARTIAL)


def test_a_whole_name_is_an_exact_match(index: CustomerIndex) -> None:
    assert found(index, "zurich oresund ag") == (MatchKind.EXACT, ["cus_Zz9"], [Via.NAME])


@pytest.mark.parametrize(("query", "via"), [
    ("cus_MNo3yDBSe0KKBI", Via.CUSTOMER_ID),  # the billing id, which is also the ERP party code
    ("30", Via.ERP_PARTY),
    ("360000028", Via.SUPPORT_ORG),
    ("  cus_mno3ydbse0kkbi ", Via.CUSTOMER_ID),  # spaces and case do not matter
])
def test_any_id_in_any_system(index: CustomerIndex, query: str, via: Via) -> None:
    assert found(index, query) == (MatchKind.EXACT, ["cus_MNo3yDBSe0KKBI"], [via])


def test_an_email_domain_address_or_tax_id(index: CustomerIndex) -> None:
    assert found(index, "bluerobotics.example") == (MatchKind.EXACT, ["cus_Blue1"], [Via.DOMAIN])
    assert found(index, "@BlueRobotics.example") == (MatchKind.EXACT, ["cus_Blue1"], [Via.DOMAIN])
    assert found(index, "ops@bluerobotics.example") == (MatchKind.EXACT, ["cus_Blue1"], [Via.EMAIL])
    # the ERP party's own e-mail domain finds the customer too
    assert found(index, "cus_blue2.example") == (MatchKind.EXACT, ["cus_Blue2"], [Via.DOMAIN])
    assert found(index, "che-123.456.789") == (MatchKind.EXACT, ["cus_Zz9"], [Via.TAX_ID])


def test_a_unique_prefix_of_an_id(index: CustomerIndex) -> None:
    assert found(index, "cus_MNo3") == (MatchKind.PREFIX, ["cus_MNo3yDBSe0KKBI"], [Via.CUSTOMER_ID])
    assert found(index, "36100") == (MatchKind.PREFIX, ["cus_Zz9"], [Via.SUPPORT_ORG])
    # an exact id wins over the ids it begins: "31" is a party, and "312" begins with it
    assert found(index, "31") == (MatchKind.EXACT, ["cus_Blue1"], [Via.ERP_PARTY])


def test_several_matches_are_listed_not_guessed(index: CustomerIndex) -> None:
    result = index.find("blue")
    assert result.kind is MatchKind.PARTIAL and result.unique is None
    assert result.customer_ids() == ["cus_Blue2", "cus_Blue1"]  # in name order
    problem = result.problem()
    assert problem is not None
    assert "'blue' matches 2 customers" in problem
    assert "cus_Blue1  Blue Robotics Inc." in problem and "cus_Blue2  Blue Harbour Logistics" in problem
    prefix = index.find("3600000")
    assert prefix.kind is MatchKind.PREFIX and len(prefix.matches) == 3
    assert "(support organization id 360000029)" in (prefix.problem() or "")
    assert index.find("blue robotics").unique is not None  # more words narrow it to one


def test_nothing_found_says_what_was_tried(index: CustomerIndex) -> None:
    result = index.find("Nobody Corp")
    assert result.kind is MatchKind.NONE and result.matches == []
    assert result.problem() == ("no customer 'Nobody Corp' in any system (tried ids of billing, the ERP and "
                                "support, e-mail domains, tax ids and names)")
    assert index.find("   ").kind is MatchKind.NONE


def test_a_customer_id_only_the_erp_holds_is_found(index: CustomerIndex) -> None:
    assert found(index, "legacy ventures") == (MatchKind.PARTIAL, ["cus_OnlyErp"], [Via.NAME])
    assert found(index, "77") == (MatchKind.EXACT, ["cus_OnlyErp"], [Via.ERP_PARTY])
    row = index.row("cus_OnlyErp")
    assert row is not None and row.erp_party == "77" and row.support_org is None


def test_rows_carry_their_open_exceptions() -> None:
    w = world().exception("invoice.amount_mismatch", "cus_Blue1", "in_1", [])
    index = CustomerIndex.from_snapshot(w.snapshot(), w.exceptions)
    row = index.row("cus_Blue1")
    assert row is not None and row.open_exceptions == 1 and row.rules == ("invoice.amount_mismatch",)


def test_the_console_search_is_accent_insensitive_too() -> None:
    rows = world().rows()
    hits = RowFilter(rows).apply("zurich")
    assert [rows[i].customer_id for i in hits] == ["cus_Zz9"]
    assert [rows[i].customer_id for i in RowFilter(rows).apply("STRASSENBAU")] == ["cus_MNo3yDBSe0KKBI"]

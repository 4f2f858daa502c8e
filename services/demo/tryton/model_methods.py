"""The model-specific RPC methods: the invoice buttons, the user's preferences and the ERP's
today (``ir.date.today``: ``ir.date`` is a plain trytond ``Model`` serving only that)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.demo.tryton.errors import HTTPAbort
from services.demo.tryton.invoices import date_today, invoice_cancel, invoice_draft, invoice_post, invoice_validate
from services.demo.tryton.model_call import GENERIC_METHODS, ModelCall


def user_get_preferences(call: ModelCall, context_only: Any = False) -> dict[str, Any]:
    user = call.store.tables["res.user"].get(call.tx.user) or {}
    company = user.get("company")
    if company is None and call.store.tables["company.company"]:
        company = min(call.store.tables["company.company"])
    prefs: dict[str, Any] = {
        "language": user["language"] if isinstance(user.get("language"), str) else "en",
        "language_direction": "ltr",
        "groups": [1],
        "company": company,
        "companies": [company] if company is not None else [],
        "company_filter": "one",
        "employee": None,
        "employees": [],
        "locale": {"date": "%m/%d/%Y", "grouping": [3, 3, 0], "decimal_point": ".",
                   "thousands_sep": ",", "mon_grouping": [3, 3, 0], "mon_decimal_point": ".",
                   "mon_thousands_sep": ",", "p_sign_posn": 1, "n_sign_posn": 1,
                   "p_cs_precedes": True, "n_cs_precedes": True, "p_sep_by_space": False,
                   "n_sep_by_space": False, "positive_sign": "", "negative_sign": "-"},
        "user": call.tx.user,
    }
    if not context_only:
        prefs.update(name=user.get("name"), login=user.get("login"), email=None, signature=None,
                     status_bar=user.get("name"))
    return prefs


def not_served(call: ModelCall, *args: Any) -> None:
    """A method the model does not serve over RPC: trytond's dispatcher answers 403."""
    raise HTTPAbort(403)


#: the generic methods (search, read, ...) ``ir.date`` does not serve (it stores nothing)
NOT_STORED: dict[str, Callable[..., Any]] = dict.fromkeys(GENERIC_METHODS, not_served)

MODEL_METHODS: dict[str, dict[str, Callable[..., Any]]] = {
    "ir.date": {**NOT_STORED, "today": date_today},
    "account.invoice": {"post": invoice_post, "validate_invoice": invoice_validate,
                        "cancel": invoice_cancel, "draft": invoice_draft},
    "res.user": {"get_preferences": user_get_preferences},
}

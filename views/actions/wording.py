"""How the action views name and frame each action kind and the operator: titles, hints, which
kinds need a reason, which run over a selection, "alice · finance"."""

from __future__ import annotations

from services.actions.model import ActionKind, Operator
from views.widgets.text import text_of

#: what the auditor role may do, shown where a role is chosen; a refused act says why in the
#: service's own words (services.actions.service: a verdict, or auditor_refusal)
AUDITOR_TIP = "auditors can read, verify and export; they never act"

KIND_TITLES: dict[ActionKind, str] = {
    ActionKind.RETRY: "Retry",
    ActionKind.POST: "Post draft",
    ActionKind.REPOST: "Delete draft and re-post",
    ActionKind.CORRECT: "Correct",
    ActionKind.CREDIT_REPOST: "Credit + repost",
    ActionKind.CREDIT: "Post ERP credit note",
    ActionKind.ACCEPT: "Accept difference",
    ActionKind.LINK: "Link",
    ActionKind.CREATE: "Create",
    ActionKind.PUSH: "Push owner value",
    ActionKind.REVOKE: "Revoke / downgrade",
    ActionKind.CANCEL: "Cancel extra draft",
    ActionKind.FLAG: "Flag for review",
}
#: the fixes a rule may list that are not (yet) an action of the service: named all the same
OTHER_FIX_TITLES: dict[str, str] = {"record": "Record in ERP"}
#: the kinds offered over a selection (Actions > Bulk fix, the toolbar's Bulk fix)
BULK_KINDS = (ActionKind.RETRY, ActionKind.POST, ActionKind.REPOST, ActionKind.PUSH, ActionKind.CREATE,
              ActionKind.REVOKE, ActionKind.CANCEL,
              ActionKind.FLAG, ActionKind.ACCEPT)
KIND_HINTS: dict[ActionKind, str] = {
    ActionKind.RETRY: "Re-run the synchronization of this object from its owner to the target.",
    ActionKind.POST: "Post the ERP's draft copy of this invoice (dated today when the ERP's invoice sequence is "
                     "already later).",
    ActionKind.REPOST: "Delete the ERP's draft copy, then create and post the invoice again from billing's lines.",
    ActionKind.CORRECT: "Write the values below to the copy. They are prefilled from the owner's side.",
    ActionKind.CREDIT_REPOST: "Credit the posted ERP invoice (a credit note cancels it; a paid one keeps its payment "
                              "and is credited without refund), then post a corrected copy with billing's lines and "
                              "currency. Finance only.",
    ActionKind.CREDIT: "Post the ERP credit note against the credited ERP invoice, as Tryton's credit makes one "
                       "(each line crediting a line of it, billing's lines and mapped taxes; billing's totals "
                       "checked to the cent before posting). Finance only.",
    ActionKind.ACCEPT: "Mark the difference as intended until the expiry date; it reopens if the data changes.",
    ActionKind.LINK: "Map this record to one of the candidates below.",
    ActionKind.CREATE: "Create the missing record from the owner's data.",
    ActionKind.PUSH: "Write the owner's value to the copies.",
    ActionKind.REVOKE: "Revoke or downgrade the support entitlement that has no active subscription.",
    ActionKind.CANCEL: "Cancel the extra draft invoice in the ERP.",
    ActionKind.FLAG: "Flag the record for review; nothing is written to the systems.",
}
#: kinds whose reason is required (the others take an optional one)
REASON_REQUIRED = frozenset({ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.REPOST, ActionKind.ACCEPT,
                             ActionKind.FLAG})
#: kinds that need a value per item, so they are never offered over a selection
NOT_BULK = frozenset({ActionKind.CORRECT, ActionKind.LINK})
ACCEPT_DEFAULT_DAYS = 30


def kind_of(action: str) -> ActionKind | None:
    """The action kind of a fix-button id (``"retry"`` …); ``None`` for one the service lacks."""
    try:
        return ActionKind(action)
    except ValueError:
        return None


def kind_title(kind: ActionKind | str) -> str:
    """The one name of a fix, everywhere it is shown (buttons, dialogs, menus, the audit log);
    never the service's internal name (``credit_repost`` is "Credit + repost")."""
    k = kind_of(str(kind)) if not isinstance(kind, ActionKind) else kind
    if k is not None and k in KIND_TITLES:
        return KIND_TITLES[k]
    raw = str(kind.value if isinstance(kind, ActionKind) else kind)
    return OTHER_FIX_TITLES.get(raw) or raw.replace("_", " ").capitalize()


def fix_button_text(action: ActionKind | str) -> str:
    """A fix button's text: the fix's name, and "…" — every fix opens its preview first."""
    return f"{kind_title(action)}…"


def bulk_text(kind: ActionKind) -> str:
    """A bulk menu entry: "Retry every shown exception…"."""
    return f"{kind_title(kind)} every shown exception…"


def operator_text(operator: Operator) -> str:
    return f"{operator.name} · {text_of(operator.role)}"

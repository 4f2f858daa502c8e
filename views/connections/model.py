"""What the Connections dialog edits, as plain data (no Qt): a profile's form, its validation in
plain words, and what is stored for it (never a secret's value).

:class:`ProfileForm` is the dialog's fields; :func:`validate` says, per field, what is wrong;
:func:`system_inputs` turns a form into :class:`services.io.config_write.SystemInput` (a secret
only when one was typed: an empty secret field keeps the stored one). :class:`StoredProfile`
is a profile as the file holds it, with each credential's *source* ("stored in the keyring",
"environment variable X", "in the file", "missing") — the dialog never sees a stored secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.core.domain import System
from services.io.config import ALTERNATIVE_SECRETS, KINDS, REQUIRED_KEYS, SECRET_KEYS, SETTING_FOR_SECRET
from services.io.config_write import PROFILE_NAME, Setting, SystemInput

#: what a person calls each system's credential
SECRET_LABELS: dict[System, str] = {
    System.BILLING: "Secret or restricted key",
    System.ERP: "Password",
    System.SUPPORT: "API token",
}
#: the settings each system's form shows (key -> label), beside its URL and credential
SETTING_LABELS: dict[System, dict[str, str]] = {
    System.BILLING: {},
    System.ERP: {"database": "Database", "login": "Login"},
    System.SUPPORT: {"email": "Agent e-mail"},
}
URL_LABELS: dict[System, str] = {
    System.BILLING: "API address",
    System.ERP: "Server address",
    System.SUPPORT: "Subdomain or address",
}
URL_HINTS: dict[System, str] = {
    System.BILLING: "https://api.stripe.com",
    System.ERP: "https://erp.example.com:8000",
    System.SUPPORT: "yourcompany  or  https://yourcompany.zendesk.com",
}
#: a system whose kind takes one of several credentials: credential -> what the choice says
#: (Zendesk: an API token, which goes with the agent's e-mail, or an OAuth access token)
CREDENTIAL_CHOICES: dict[System, dict[str, str]] = {
    System.SUPPORT: {"api_token": "API token (with the agent's e-mail)", "oauth_token": "OAuth token"},
}
#: the credential field's label for a chosen credential other than the kind's first
CREDENTIAL_LABELS: dict[str, str] = {"oauth_token": "OAuth token"}
KIND_TITLES: dict[str, str] = {"stripe": "Stripe", "tryton": "Tryton", "zendesk": "Zendesk"}
#: the shown source of a credential kept in the OS keyring
IN_KEYRING = "stored in the keyring"
#: the demo's own credentials, recognised to label a profile DEMO (services/demo: constants)
_DEMO_MARKERS = ("syncdesk_demo", "syncdesk-demo")


@dataclass
class SystemForm:
    """One system's fields. ``secret``: what was typed (``""``: keep the stored one)."""

    system: System
    enabled: bool = True
    url: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    secret: str = ""
    #: which credential ``secret`` is (``""``: the kind's first, see :data:`CREDENTIAL_CHOICES`)
    credential: str = ""

    @property
    def kind(self) -> str:
        return KINDS[self.system]

    @property
    def secret_key(self) -> str:
        return self.credential or SECRET_KEYS[self.kind][0]

    def needs(self, setting: str) -> bool:
        """Whether this form's credential needs ``setting`` (Zendesk's e-mail goes with an API
        token only)."""
        tied = SETTING_FOR_SECRET.get(self.kind, {}).get(setting)
        return tied is None or tied == self.secret_key

    def __repr__(self) -> str:  # a typed secret never shows
        return (f"SystemForm({self.system.value}, enabled={self.enabled}, url={self.url!r}, "
                f"settings={self.settings!r}, secret={'<typed>' if self.secret else '<kept>'})")


@dataclass
class ProfileForm:
    name: str
    read_only: bool = False
    systems: dict[System, SystemForm] = field(default_factory=dict)

    def enabled(self) -> list[SystemForm]:
        return [f for f in self.systems.values() if f.enabled]


@dataclass(frozen=True)
class StoredSystem:
    system: System
    url: str
    settings: dict[str, str]
    #: credential -> where it comes from (:data:`IN_KEYRING`, "environment variable X", …)
    secret_source: str
    #: which credential is stored (``""``: the kind's first; Zendesk: ``oauth_token`` when present)
    credential: str = ""


@dataclass(frozen=True)
class StoredProfile:
    name: str
    read_only: bool
    systems: dict[System, StoredSystem]

    def form(self) -> ProfileForm:
        """The dialog's fields for this profile (secrets left empty: kept unless retyped)."""
        return ProfileForm(self.name, self.read_only, {
            s: SystemForm(s, s in self.systems, self.systems[s].url if s in self.systems else "",
                          dict(self.systems[s].settings) if s in self.systems else {},
                          credential=self.systems[s].credential if s in self.systems else "")
            for s in System})


def blank_form(name: str = "") -> ProfileForm:
    return ProfileForm(name, False, {s: SystemForm(s) for s in System})


def zendesk_url(text: str) -> str:
    """A Zendesk subdomain (``acme``) or address, as the address SyncDesk calls."""
    text = text.strip()
    if text and "://" not in text and "." not in text and ":" not in text and "/" not in text:
        return f"https://{text}.zendesk.com"
    return text


def form_url(form: SystemForm) -> str:
    return zendesk_url(form.url) if form.system is System.SUPPORT else form.url.strip().rstrip("/")


def validate(form: ProfileForm, *, new: bool, stored: StoredProfile | None = None,
             taken: frozenset[str] = frozenset()) -> dict[str, str]:
    """Field -> what is wrong with it, in plain words (empty: the form can be saved). Fields are
    ``name``, ``systems``, and ``<system>.url`` / ``<system>.<setting>`` / ``<system>.secret``."""
    errors: dict[str, str] = {}
    name = form.name.strip()
    if not name:
        errors["name"] = "Give the profile a name."
    elif not PROFILE_NAME.match(name):
        errors["name"] = ("Use letters, digits, dots, dashes or underscores (at most 64), starting with a letter "
                          "or digit.")
    elif new and name in taken:
        errors["name"] = f"A profile named {name} exists already: choose another name."
    if not form.enabled():
        errors["systems"] = "Connect at least one system."
    for sys_form in form.enabled():
        key = sys_form.system.value
        url = form_url(sys_form)
        parts = urlsplit(url)
        if not url:
            errors[f"{key}.url"] = "Give the address."
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            errors[f"{key}.url"] = "The address must start with https:// (or http://) and name a server."
        for setting in REQUIRED_KEYS[sys_form.kind]:
            if setting != "url" and sys_form.needs(setting) and not sys_form.settings.get(setting, "").strip():
                errors[f"{key}.{setting}"] = f"Give the {SETTING_LABELS[sys_form.system][setting].lower()}."
        email = sys_form.settings.get("email", "").strip()
        if sys_form.system is System.SUPPORT and sys_form.needs("email") and email \
                and not re.match(r"^[^@\s]+@[^@\s]+$", email):
            errors[f"{key}.email"] = "That is not an e-mail address."
        secret = sys_form.secret.strip()
        has_stored = stored is not None and sys_form.system in stored.systems \
            and stored.systems[sys_form.system].secret_source != "missing" \
            and (stored.systems[sys_form.system].credential or SECRET_KEYS[sys_form.kind][0]) == sys_form.secret_key
        if not secret and not has_stored:
            errors[f"{key}.secret"] = f"Give the {secret_label(sys_form).lower()}."
        if secret and sys_form.system is System.BILLING and not secret.startswith(("sk_", "rk_")):
            errors[f"{key}.secret"] = ("A Stripe secret key starts with sk_ and a restricted key with rk_: "
                                       "a publishable key (pk_) cannot read billing data.")
    return errors


def system_inputs(form: ProfileForm) -> list[SystemInput]:
    """The enabled systems as :class:`SystemInput` (a typed secret goes to the keyring)."""
    out: list[SystemInput] = []
    for sys_form in form.enabled():
        settings: dict[str, Setting | None] = {
            k: v.strip() for k, v in sys_form.settings.items()
            if k in SETTING_LABELS[sys_form.system] and v.strip() and sys_form.needs(k)}
        settings.update({k: None for k in SETTING_LABELS[sys_form.system] if not sys_form.needs(k)})
        secrets = {sys_form.secret_key: sys_form.secret.strip()} if sys_form.secret.strip() else {}
        # the other credentials of a choice go (an OAuth token replaces the API token, and back)
        dropped = [k for k in ALTERNATIVE_SECRETS.get(sys_form.kind, ()) if k != sys_form.secret_key]
        out.append(SystemInput(sys_form.system, form_url(sys_form), settings, secrets, drop_secrets=dropped))
    return out


def secret_label(form: SystemForm) -> str:
    """What the credential field of ``form`` is called (its chosen credential)."""
    return CREDENTIAL_LABELS.get(form.secret_key, SECRET_LABELS[form.system])


def removed_systems(form: ProfileForm, stored: StoredProfile | None) -> list[System]:
    if stored is None:
        return []
    return [s for s in stored.systems if not form.systems.get(s, SystemForm(s, False)).enabled]


def is_demo(name: str, settings: dict[System, dict[str, str]] | None = None) -> bool:
    """A profile that is (or points at) the built-in demo: named ``demo…``, or using the demo
    company's own database or accounts."""
    if name.lower().startswith("demo"):
        return True
    for values in (settings or {}).values():
        if any(marker in str(v).lower() for v in values.values() for marker in _DEMO_MARKERS):
            return True
    return False

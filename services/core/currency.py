"""Currencies' minor units and the display of amounts with each currency's own exponent.

Money is exact: an amount is a ``Decimal`` in major units (``services.core.domain.Money``) or an
``int`` in minor units, never a float. A currency's *exponent* is the number of decimals of its
minor unit as ISO 4217 defines it (List One, the active codes): JPY has none, EUR two, KWD three,
CLF four. A code the table does not hold has two, as most currencies do.

- :func:`to_minor` / :func:`from_minor` convert exactly; an amount with more (non-zero) decimals
  than its currency's exponent is a :class:`MinorUnitError`, never silently rounded;
- :func:`money_key` / :func:`same_amount` compare amounts in minor units; an amount finer than its
  currency's minor unit (an ERP that stored 12.3451 KWD) is compared exactly, never rounded;
- :func:`format_money` prints an amount with its currency's exponent and thousands grouping
  ("1,234.50 EUR", "1,235 JPY", "12.345 KWD"); an amount finer than the minor unit shows all of
  its decimals, so two different amounts never read the same. :func:`amount_text` is the same
  without grouping or code (a side's ``total`` value).

Stripe's API counts amounts in minor units too, but its own table differs from ISO 4217 in a few
places (https://docs.stripe.com/currencies, "Zero-decimal currencies", "Three-decimal currencies",
"Special cases"): :func:`stripe_exponent` is the exponent Stripe's ``amount`` fields use, and
:data:`STRIPE_SPECIAL_CASES` notes the rules it adds on top.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

#: the exponent of a currency the table does not hold
DEFAULT_EXPONENT = 2

#: ISO 4217 List One: the minor-unit exponent of every active currency code (funds included;
#: the codes without a minor unit — precious metals, XDR, XSU, XUA, the bond-market units,
#: XTS and XXX — are not money SyncDesk bills in and are left out).
ISO_EXPONENTS: Mapping[str, int] = MappingProxyType({
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BOV": 2,
    "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
    "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2, "COU": 2,
    "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2,
    "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
    "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
    "FJD": 2, "FKP": 2,
    "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
    "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
    "JMD": 2, "JOD": 3, "JPY": 0,
    "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
    "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
    "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2,
    "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2,
    "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
    "OMR": 3,
    "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
    "QAR": 2,
    "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
    "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2,
    "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
    "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
    "UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2,
    "VED": 2, "VES": 2, "VND": 0, "VUV": 0,
    "WST": 2,
    "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
    "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWG": 2,
})

#: Stripe's zero-decimal currencies: an ``amount`` of 500 is ¥500.
STRIPE_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                 "VND", "VUV", "XAF", "XOF", "XPF"})
#: Stripe's three-decimal currencies (it asks for a last digit of 0 in payments: 5.124 KWD is sent
#: as 5120 or 5130). Every other currency is two-decimal in Stripe's API — IQD and LYD included,
#: which ISO gives three.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: Stripe's special cases: the API's exponent stays as :func:`stripe_exponent` says, with a rule on top.
STRIPE_SPECIAL_CASES: Mapping[str, str] = MappingProxyType({
    "ISK": "zero-decimal in practice (ISO 4217: 0), but two-decimal in Stripe's API for backwards "
           "compatibility: amounts are multiples of 100 (5 ISK is 500)",
    "HUF": "two-decimal in charges, zero-decimal for payouts: a payout amount is a multiple of 100",
    "TWD": "two-decimal in charges, zero-decimal for payouts: a payout amount is a multiple of 100",
    "UGX": "zero-decimal in Stripe's API (ISO 4217: 0); Stripe once treated it as two-decimal",
})


class MinorUnitError(ValueError):
    """An amount that is not a whole number of its currency's minor units (or not a number)."""


def _code(code: str) -> str:
    return code.upper()


def exponent(code: str) -> int:
    """The ISO 4217 minor-unit exponent of ``code`` (any case); 2 for a code the table does not hold."""
    return ISO_EXPONENTS.get(_code(code), DEFAULT_EXPONENT)


def stripe_exponent(code: str) -> int:
    """The exponent of Stripe's integer ``amount`` fields in ``code`` (any case)."""
    c = _code(code)
    if c in STRIPE_ZERO_DECIMAL:
        return 0
    if c in STRIPE_THREE_DECIMAL:
        return 3
    return DEFAULT_EXPONENT


def _check(amount: Decimal) -> None:
    if not isinstance(amount, Decimal):
        raise TypeError(f"an amount is a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise MinorUnitError(f"not an amount: {amount}")


def _scaled(amount: Decimal, exp: int) -> int | None:
    """``amount * 10**exp`` as an exact int, or None when it has a fraction left (pure integer arithmetic)."""
    sign, digits, dec_exp = amount.as_tuple()
    assert isinstance(dec_exp, int)  # finite (checked by the caller)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = dec_exp + exp
    if shift >= 0:
        value = coefficient * 10 ** shift
    else:
        value, rest = divmod(coefficient, 10 ** -shift)
        if rest:
            return None
    return -value if sign else value


def to_minor(amount: Decimal, code: str) -> int:
    """``amount`` (major units) as an exact number of ``code``'s minor units: 12.345 KWD -> 12345,
    1500 JPY -> 1500, 19.90 EUR -> 1990. Trailing zeros are fine (12.3400 EUR -> 1234); a non-zero
    decimal beyond the exponent (0.5 JPY, 12.3451 KWD) is a :class:`MinorUnitError`, never rounded."""
    _check(amount)
    minor = _scaled(amount, exponent(code))
    if minor is None:
        raise MinorUnitError(f"{amount} {_code(code)} has more decimals than {_code(code)}'s "
                             f"{exponent(code)}: it is not a whole number of minor units")
    return minor


def from_minor(minor: int, code: str) -> Decimal:
    """``minor`` units of ``code`` as an exact Decimal in major units with the currency's exponent
    (1990 EUR -> Decimal("19.90"), 1500 JPY -> Decimal("1500"), 12345 KWD -> Decimal("12.345"))."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units are an int, not {type(minor).__name__}")
    return Decimal((1 if minor < 0 else 0, tuple(int(d) for d in str(abs(minor))), -exponent(code)))


def is_whole_minor(amount: Decimal, code: str) -> bool:
    """Whether ``amount`` is a whole number of ``code``'s minor units."""
    _check(amount)
    return _scaled(amount, exponent(code)) is not None


def money_key(amount: Decimal, code: str) -> tuple[str, int]:
    """``(CODE, minor units)``: the key amounts are compared and sorted by (strict, as :func:`to_minor`)."""
    return _code(code), to_minor(amount, code)


def same_amount(a: Decimal, a_code: str, b: Decimal, b_code: str) -> bool:
    """Whether two amounts are the same money: the same currency and the same number of minor
    units. An amount finer than its minor unit is compared exactly (12.3451 KWD differs from
    12.345 KWD), never rounded to make it agree. (Exact Decimal equality is the same relation —
    12.34 and 12.340 are one number — and is the fast path for the agreeing case.)"""
    if _code(a_code) != _code(b_code):
        return False
    if not (isinstance(a, Decimal) and isinstance(b, Decimal)):
        raise TypeError("amounts are Decimals")
    if not (a.is_finite() and b.is_finite()):
        return a.compare_total(b) == 0  # NaN / Infinity: the same only when identical
    if a == b:
        return True
    exp = exponent(a_code)
    ma, mb = _scaled(a, exp), _scaled(b, exp)
    if ma is not None and mb is not None:
        return ma == mb
    return a == b  # at least one is finer than the minor unit: exact comparison


def _places(amount: Decimal, code: str) -> int:
    """The decimals shown: the currency's exponent, or more when the amount is finer than its minor unit."""
    exp = exponent(code)
    if _scaled(amount, exp) is not None:
        return exp
    dec_exp = amount.normalize().as_tuple().exponent
    assert isinstance(dec_exp, int)
    return max(exp, -dec_exp)


def amount_text(amount: Decimal, code: str) -> str:
    """``amount`` with ``code``'s exponent, no grouping and no code: "1234.50", "1235", "12.340"
    (a NaN or infinite Decimal as Python writes it)."""
    if isinstance(amount, Decimal) and not amount.is_finite():
        return str(amount)
    _check(amount)
    return f"{amount:.{_places(amount, code)}f}"


def format_money(amount: Decimal, code: str, *, locale: str | None = None) -> str:
    """``amount`` with ``code``'s exponent and thousands grouping, then the code:
    "1,234.50 EUR", "1,235 JPY", "12.345 KWD", "-0.50 USD". Never rounded: an amount finer than
    the minor unit shows every decimal it has ("12.3451 KWD").

    ``locale`` (e.g. ``"de_DE"``) groups and marks decimals as that locale does ("1.234,50 EUR");
    it needs the optional ``babel`` package, and without it is a ``RuntimeError``. ``None``
    (every caller in SyncDesk) is the locale-independent form above. A NaN or infinite Decimal
    is shown as Python writes it ("NaN EUR"): display never fails."""
    if isinstance(amount, Decimal) and not amount.is_finite():
        return f"{amount} {_code(code)}"
    _check(amount)
    places = _places(amount, code)
    if locale is None:
        return f"{amount:,.{places}f} {_code(code)}"
    numbers = _babel_numbers()
    pattern = "#,##0" + ("." + "0" * places if places else "")
    text = numbers.format_decimal(amount, format=pattern, locale=locale, decimal_quantization=False)
    return f"{text} {_code(code)}"


def _babel_numbers() -> Any:
    try:
        return importlib.import_module("babel.numbers")
    except ImportError:
        raise RuntimeError("locale-aware amounts need the babel package, which is not installed") from None

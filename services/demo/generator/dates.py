"""Civil-date arithmetic on unix seconds (UTC), cheap enough for the generator's hot paths:
calendar months as Stripe's billing cycle anchor counts them, and the three time types the
stores hold (``int`` seconds in billing, naive UTC ``datetime`` in the ERP, aware UTC
``datetime`` in support)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

DAY = 86400
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MDAYS[m - 1]


def _civil(ts: int) -> tuple[int, int, int, int]:
    dt = _EPOCH + timedelta(seconds=ts)
    return dt.year, dt.month, dt.day, ts % DAY


def _add_months(base: tuple[int, int, int, int], k: int) -> int:
    """Unix time of ``base`` (year, month, day, second of day) plus ``k`` calendar months,
    the day clamped to the month's length (as Stripe's billing cycle anchor)."""
    y, m, d, sod = base
    mm = m - 1 + k
    yy = y + mm // 12
    mm = mm % 12 + 1
    dd = min(d, _month_days(yy, mm))
    return _days_from_civil(yy, mm, dd) * DAY + sod


def naive_utc(ts: int) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


def aware_utc(ts: int) -> datetime:
    return _EPOCH_UTC + timedelta(seconds=ts)


def utc_date(ts: int) -> date:
    return (_EPOCH + timedelta(seconds=ts)).date()


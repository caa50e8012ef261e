"""ECB reference rates: the rate of a currency on a day, or of the latest earlier day."""

from __future__ import annotations

import bisect
import datetime as dt
from decimal import Decimal


class RateTable:
    """Units of currency per 1 EUR, looked up with the latest-earlier-rate rule (DATA.md)."""

    def __init__(self, rates: dict[str, list[tuple[str, str]]]):
        # {currency: [(iso date, rate), ...]} sorted by date; plain data so it pickles small.
        self.rates = {c: sorted(v) for c, v in rates.items()}
        self._dates = {c: [d for d, _ in v] for c, v in self.rates.items()}

    def rate(self, currency: str, day: dt.date) -> Decimal | None:
        if currency == "EUR":
            return Decimal(1)
        dates = self._dates.get(currency)
        if not dates:
            return None
        i = bisect.bisect_right(dates, day.isoformat())
        return Decimal(self.rates[currency][i - 1][1]) if i else None

    def rate_on(self, currency: str, day: dt.date) -> tuple[Decimal, dt.date] | None:
        """The rate that applies on `day` and the date it was published for (EUR: 1, `day`)."""
        if currency == "EUR":
            return Decimal(1), day
        dates = self._dates.get(currency)
        if not dates:
            return None
        i = bisect.bisect_right(dates, day.isoformat())
        if not i:
            return None
        published, rate = self.rates[currency][i - 1]
        return Decimal(rate), dt.date.fromisoformat(published)

    @classmethod
    def from_database(cls) -> RateTable:
        from datalake.models import ExchangeRate

        table: dict[str, list[tuple[str, str]]] = {}
        for currency, day, rate in ExchangeRate.objects.values_list("currency", "date", "rate"):
            table.setdefault(currency, []).append((day.isoformat(), str(rate)))
        return cls(table)

    def as_data(self) -> dict:
        return self.rates

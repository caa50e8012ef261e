"""`product-demand`: how many units of a product sell on a day, from its own past days.

The data is the daily units sold per product (sum of `quantity` of the current
`completed` transactions, UTC days) from the `metrics_product_day` aggregate, which
every merge keeps in its own transaction: read in one REPEATABLE READ snapshot with
the `transactions` version, the series is exactly that version's. A day without a
sale is 0. Each (product, day) is one example whose features come only from the
days before it (lags, weekly means, same weekday of the last four weeks, trend, day
of week), so the same recipe answers any day inside the data and, day by day, the
`horizon_days` after it. A gradient-boosted tree ensemble with a Poisson loss (the
target is a count) learns them; the last `holdout_days` days are held back to
measure it one day ahead against the naive forecast (yesterday's value), then the
model is fit again on every day and stored.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from rest_framework import serializers

from .registry import ModelType, PredictionError, Trained, TrainingError

LAGS = (1, 2, 7, 14, 21, 28)
PAD = max(LAGS)
FEATURES = (
    *(f"lag_{k}" for k in LAGS),
    "mean_7",
    "mean_28",
    "same_weekday_mean_4",
    "trend_7",
    "day_of_week",
)
LAG_1 = FEATURES.index("lag_1")
MIN_LEARN_DAYS = 14
# OpenMP threads of one fit or prediction (setting ML_THREADS). A Celery worker already runs
# a task per core, and more threads than free cores slow a fit down ~10x on 2 busy cores.
DEFAULT_THREADS = 1


class ProductDemandParams(serializers.Serializer):
    holdout_days = serializers.IntegerField(
        default=14, min_value=1, max_value=90,
        help_text="The last N days, held back to measure the model and the naive forecast.",
    )  # fmt: skip
    since = serializers.DateField(
        required=False, help_text="Learn from this day on (default: the first day with sales)."
    )
    until = serializers.DateField(
        required=False,
        help_text="Learn up to this day, inclusive (default: yesterday, UTC: today is not over).",
    )
    horizon_days = serializers.IntegerField(
        default=28, min_value=1, max_value=366,
        help_text="How many days past the last day of data `predict/` forecasts (day by day).",
    )  # fmt: skip
    max_iter = serializers.IntegerField(
        default=100, min_value=10, max_value=2000, help_text="Boosting iterations (trees)."
    )
    learning_rate = serializers.FloatField(
        default=0.1, min_value=0.001, max_value=1.0, help_text="Shrinkage of each tree."
    )
    max_leaf_nodes = serializers.IntegerField(
        default=15, min_value=2, max_value=255, help_text="Leaves per tree."
    )
    min_samples_leaf = serializers.IntegerField(
        default=20, min_value=1, max_value=10000, help_text="Fewest examples in a leaf."
    )

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be on or after `since`."]})
        return attrs


class ProductDemandInput(serializers.Serializer):
    product_id = serializers.CharField(max_length=64, help_text="A product of the data.")
    date = serializers.DateField(
        help_text="The day to forecast (YYYY-MM-DD): inside the model's data, or up to "
        "`horizon_days` after its last day."
    )


def daily_units(since: dt.date | None, until: dt.date):
    """(transactions version, first day, product ids, units[day, product]) in one snapshot."""
    from datalake.models import Resource
    from metrics.models import ProductDay

    nested = connection.in_atomic_block  # (tests) an outer transaction already fixed its view
    with transaction.atomic():
        if not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        version = (
            Resource.objects.filter(name="transactions")
            .values_list("current_version", flat=True)
            .first()
        )
        rows = ProductDay.objects.filter(quantity__gt=0, day__lte=until)
        if since:
            rows = rows.filter(day__gte=since)
        rows = list(rows.values_list("product_id", "day", "quantity"))
    if not rows:
        raise TrainingError(
            f"No completed transactions up to {until}: there is nothing to learn from."
        )
    first = min(r[1] for r in rows)
    last = max(r[1] for r in rows)
    products = sorted({r[0] for r in rows})
    column = {p: i for i, p in enumerate(products)}
    units = np.zeros(((last - first).days + 1, len(products)), dtype=np.int64)
    for product, day, quantity in rows:
        units[(day - first).days, column[product]] += quantity
    return version, first, products, units


def features(units: np.ndarray, first_day: dt.date, start: int, stop: int) -> np.ndarray:
    """The features of days [start, stop) (indexes from `first_day`; stop <= days + 1) of
    every column of `units` (days x products), each from the days before it only.
    One row per (day, product), day by day; NaN where a day before the data is needed."""
    products = units.shape[1]
    padded = np.vstack([np.full((PAD, products), np.nan), units.astype(float)])
    target = np.arange(start, stop) + PAD
    present = ~np.isnan(padded)
    total = np.vstack([np.zeros((1, products)), np.cumsum(np.where(present, padded, 0), 0)])
    count = np.vstack([np.zeros((1, products)), np.cumsum(present, 0)])

    def mean(newest: int, oldest: int) -> np.ndarray:  # the days t-oldest .. t-newest
        s = total[target - newest + 1] - total[target - oldest]
        n = count[target - newest + 1] - count[target - oldest]
        return np.divide(s, n, out=np.full_like(s, np.nan), where=n > 0)

    lags = [padded[target - k] for k in LAGS]
    weekly = np.stack([padded[target - k] for k in (7, 14, 21, 28)])
    seen = (~np.isnan(weekly)).sum(0)
    same_weekday = np.divide(
        np.nansum(weekly, 0), seen, out=np.full(seen.shape, np.nan), where=seen > 0
    )
    weekday = np.array([(first_day + dt.timedelta(days=int(t))).weekday() for t in target - PAD])
    columns = [
        *lags,
        mean(1, 7),
        mean(1, 28),
        same_weekday,
        mean(1, 7) - mean(8, 14),
        np.broadcast_to(weekday[:, None].astype(float), lags[0].shape),
    ]
    return np.stack(columns, axis=-1).reshape(-1, len(FEATURES))


def _threads():
    """Limit the threads of the libraries loaded; scikit-learn's OpenMP runtime is loaded
    first, else the first training of a process would run unlimited."""
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=getattr(settings, "ML_THREADS", DEFAULT_THREADS))


def _fit(params: dict, x: np.ndarray, y: np.ndarray):
    """Fit; a feature with no value at all in `x` (a lag longer than the data) is given 0,
    a constant the trees never split on (scikit-learn cannot bin an all-missing column)."""
    empty = np.isnan(x).all(axis=0)
    if empty.any():
        x = x.copy()
        x[:, empty] = 0.0
    return _estimator(params).fit(x, y)


def _predict(estimator, x: np.ndarray) -> np.ndarray:
    return np.clip(estimator.predict(x), 0, None)


def _estimator(params: dict):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="poisson",
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"],
        max_leaf_nodes=params["max_leaf_nodes"],
        min_samples_leaf=params["min_samples_leaf"],
        categorical_features=[FEATURES.index("day_of_week")],
        early_stopping=False,
        random_state=0,
    )


def _errors(actual: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    diff = actual - predicted
    return round(float(np.abs(diff).mean()), 4), round(float(np.sqrt((diff**2).mean())), 4)


class ProductDemand(ModelType):
    name = "product-demand"
    description = (
        "Units of a product sold on a day (completed transactions, sum of quantity), "
        "forecast from the product's past days: lags, weekly means, same weekday, trend."
    )
    resource = "transactions"
    Params = ProductDemandParams
    PredictInput = ProductDemandInput

    def train(self, params: dict) -> Trained:
        with _threads():
            return self._train(params)

    def _train(self, params: dict) -> Trained:
        until = params.get("until") or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        version, first, products, units = daily_units(params.get("since"), until)
        days, hold = units.shape[0], params["holdout_days"]
        if days < 1 + MIN_LEARN_DAYS + hold:
            raise TrainingError(
                f"product-demand needs at least {1 + MIN_LEARN_DAYS + hold} days of sales "
                f"(1 of history, {MIN_LEARN_DAYS} to learn from, holdout_days={hold} held "
                f"back); the data has {days} ({first}..{first + dt.timedelta(days=days - 1)})."
            )
        x, y = features(units, first, 1, days), units[1:].reshape(-1).astype(float)
        split = (days - 1 - hold) * len(products)
        if not y[:split].any():
            raise TrainingError("No unit was sold before the held-back days: nothing to learn.")
        held = _fit(params, x[:split], y[:split])
        mae, rmse = _errors(y[split:], _predict(held, x[split:]))
        naive_mae, naive_rmse = _errors(y[split:], x[split:, LAG_1])
        last = first + dt.timedelta(days=days - 1)
        metrics = {
            "mae": mae, "rmse": rmse, "naive_mae": naive_mae, "naive_rmse": naive_rmse,
            "holdout_days": hold, "holdout_from": (last - dt.timedelta(days=hold - 1)).isoformat(),
            "holdout_until": last.isoformat(), "holdout_rows": int(len(y) - split),
            "train_rows": int(split),
        }  # fmt: skip
        model = _fit(params, x, y)  # the stored model learns from every day
        artifact = {
            "format": 1, "estimator": model, "first_day": first, "products": products,
            "units": units.astype(np.int32), "horizon_days": params["horizon_days"],
        }  # fmt: skip
        effective = {**params, "until": until}
        return Trained(
            artifact=artifact,
            metrics=metrics,
            params={k: str(v) if isinstance(v, dt.date) else v for k, v in effective.items()},
            data_version=version,
            data_from=first,
            data_until=last,
            details={"products": len(products), "days": days, "features": list(FEATURES)},
        )

    def predict(self, artifact: dict, data: dict) -> dict:
        first, units = artifact["first_day"], artifact["units"]
        days, last = units.shape[0], first + dt.timedelta(days=units.shape[0] - 1)
        index = artifact.setdefault("index", {p: i for i, p in enumerate(artifact["products"])})
        column = index.get(data["product_id"])
        if column is None:
            raise PredictionError(
                "product_id",
                f"{data['product_id']!r} sold nothing in this version's data "
                f"({first}..{last}): there is no history to forecast it from.",
            )
        t, horizon = (data["date"] - first).days, artifact["horizon_days"]
        if not 1 <= t <= days - 1 + horizon:
            raise PredictionError(
                "date",
                f"Give a date from {first + dt.timedelta(days=1)} (the day after the first "
                f"of the data) to {last + dt.timedelta(days=horizon)} ({horizon} days after "
                "its last).",
            )
        series, step = units[:, [column]].astype(float), min(t, days)
        with _threads():
            while True:  # past the data, each day's forecast is fed back as history
                x = features(series, first, step, step + 1)
                value = float(_predict(artifact["estimator"], x)[0])
                if step == t:
                    break
                series, step = np.vstack([series, [[value]]]), step + 1
        return {
            "prediction": round(value, 3),
            "actual": int(units[t, column]) if t < days else None,
            "data_until": last,
            "days_ahead": max(t - (days - 1), 0),
        }

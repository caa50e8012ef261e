"""`product-demand`: how many units of a product sell on a day, from its own past days.

The data is the daily units sold per product (sum of `quantity` of the current
`completed` transactions, UTC days) from the `metrics_product_day` aggregate, which
the `metrics` follower keeps with its position: read in one REPEATABLE READ snapshot with
that position, the series is exactly that version's. A day without a
sale is 0. Each (product, day) is one example whose features come only from the
days before it (lags, weekly means, same weekday of the last four weeks, trend, day
of week), so the same recipe answers any day inside the data and, day by day, the
`horizon_days` after it. A gradient-boosted tree ensemble with a Poisson loss (the
target is a count) learns them; the last `holdout_days` days are held back to
measure it one day ahead against the naive forecast (yesterday's value), then the
model is fit again on every day and stored.

A short history cannot teach the boosted model (it needs MIN_LEARN_DAYS days to learn
from, after one of history, before the held-back days): below that, the estimator is
the one the data supports (`choose`), scored the same way: the seasonal-naive forecast
(the same weekday a week before) once every held-back day has a week before it, else the
mean of the last four weeks. Two days of sales (one to learn from, one held back) are
the minimum. The choice and its reason are in the metrics.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from rest_framework import serializers

from metrics.ml.registry import ModelType, PredictionError, Trained, TrainingError

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
LAG_7 = FEATURES.index("lag_7")
MEAN_28 = FEATURES.index("mean_28")
MIN_LEARN_DAYS = 14  # the boosted model's fewest days to learn from
BOOSTED_HOLDOUT = 14  # its held-back days when the data has them ...
BOOSTED_MIN_HOLDOUT = 7  # ... and fewest: a whole week, so that every weekday is measured
SIMPLE_MAX_HOLDOUT = 7  # the simple forecasters hold back a third of the days, up to a week
SEASON = 7  # days between a day and the one the seasonal-naive forecast repeats
BOOSTED, SEASONAL_NAIVE, MEAN = "boosted", "seasonal-naive", "mean"
ESTIMATORS = ("auto", BOOSTED, SEASONAL_NAIVE, MEAN)


class ProductDemandParams(serializers.Serializer):
    estimator = serializers.ChoiceField(
        choices=ESTIMATORS, default="auto",
        help_text="`auto`: the boosted model when the data has at least "
        f"{1 + MIN_LEARN_DAYS + BOOSTED_MIN_HOLDOUT} days, else `seasonal-naive` (the same "
        "weekday a week before) when every held-back day has a week before it, else `mean` "
        "(of the last 28 days). Naming one trains it or fails saying how many days it needs.",
    )  # fmt: skip
    holdout_days = serializers.IntegerField(
        required=False, min_value=1, max_value=90,
        help_text="The last N days, held back to measure the model and the naive forecast "
        f"(default: {BOOSTED_HOLDOUT} for the boosted model, down to {BOOSTED_MIN_HOLDOUT} on "
        "a shorter history; a third of the days, at most "
        f"{SIMPLE_MAX_HOLDOUT}, for the simple forecasters).",
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
    from datalake.lake import followers
    from metrics.models import ProductDay

    nested = connection.in_atomic_block  # (tests) an outer transaction already fixed its view
    with transaction.atomic():
        if not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # The version the aggregate holds (the follower's position), not the table's.
        version = followers.state("metrics", "transactions").derived_through_version
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


class SeasonalNaive:
    """The units of the same weekday a week before; the mean of the last 28 days where
    the data has no week before (0 without any day)."""

    name = SEASONAL_NAIVE

    def fit(self, x: np.ndarray, y: np.ndarray):
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        week = x[:, LAG_7]
        return np.nan_to_num(np.where(np.isnan(week), x[:, MEAN_28], week), nan=0.0)


class MeanForecast:
    """The mean units of the last 28 days (fewer at the start of the data; 0 without any)."""

    name = MEAN

    def fit(self, x: np.ndarray, y: np.ndarray):
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.nan_to_num(x[:, MEAN_28], nan=0.0)


def _boosted_needs(hold: int) -> int:
    return 1 + MIN_LEARN_DAYS + hold


def _seasonal_needs(hold: int) -> int:
    return SEASON + hold  # the first held-back day has its day a week before


def _default_holdout(estimator: str, days: int) -> int:
    if estimator == BOOSTED:
        return max(BOOSTED_MIN_HOLDOUT, min(BOOSTED_HOLDOUT, days - _boosted_needs(0)))
    return max(1, min(SIMPLE_MAX_HOLDOUT, days // 3))


def choose(days: int, estimator: str = "auto", hold: int | None = None) -> tuple[str, int, str]:
    """(estimator, holdout days, why) for `days` days of data; TrainingError when the
    estimator asked for (or, under `auto`, any) cannot be trained and measured on them.

    `auto` takes the boosted model when the data has the days it needs, else the
    seasonal-naive forecast, else the mean: the best the history supports.
    """
    asked = estimator != "auto"
    if not asked:
        boosted_hold = hold or _default_holdout(BOOSTED, days)
        if days >= _boosted_needs(boosted_hold):
            estimator, hold = BOOSTED, boosted_hold
        else:
            hold = hold or _default_holdout(MEAN, days)
            estimator = SEASONAL_NAIVE if days >= _seasonal_needs(hold) else MEAN
    hold = hold or _default_holdout(estimator, days)
    needs = {
        BOOSTED: (_boosted_needs(hold), f"1 of history, {MIN_LEARN_DAYS} to learn from"),
        SEASONAL_NAIVE: (_seasonal_needs(hold), f"{SEASON} before the first held-back day"),
        MEAN: (1 + hold, "1 to learn from"),
    }[estimator]
    span = f"{days} day{'s' if days != 1 else ''} of sales"
    if days < needs[0]:
        raise TrainingError(
            f"The {estimator} estimator needs at least {needs[0]} days of sales ({needs[1]}, "
            f"holdout_days={hold} held back); the data has {days}."
        )
    if asked:
        return estimator, hold, f"{span}: the {estimator} estimator was asked for"
    reason = {
        BOOSTED: f"{span}: the boosted model needs {_boosted_needs(BOOSTED_MIN_HOLDOUT)} or more",
        SEASONAL_NAIVE: f"{span}: fewer than the boosted model's "
        f"{_boosted_needs(BOOSTED_MIN_HOLDOUT)}, each held-back day has its weekday a week before",
        MEAN: f"{span}: too few for a week before each held-back day",
    }[estimator]
    return estimator, hold, reason


def _threads():
    """Limit the threads of the libraries loaded; scikit-learn's OpenMP runtime is loaded
    first, else the first training of a process would run unlimited."""
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=settings.ML_THREADS)


def _fit(params: dict, x: np.ndarray, y: np.ndarray):
    """Fit; a feature with no value at all in `x` (a lag longer than the data) is given 0,
    a constant the trees never split on (scikit-learn cannot bin an all-missing column)."""
    if params["estimator"] == SEASONAL_NAIVE:
        return SeasonalNaive()
    if params["estimator"] == MEAN:
        return MeanForecast()
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
        days = units.shape[0]
        last = first + dt.timedelta(days=days - 1)
        try:
            estimator, hold, reason = choose(days, params["estimator"], params.get("holdout_days"))
        except TrainingError as exc:
            raise TrainingError(f"{exc} It runs {first}..{last}.") from None
        params = {**params, "estimator": estimator}
        x, y = features(units, first, 1, days), units[1:].reshape(-1).astype(float)
        split = (days - 1 - hold) * len(products)
        # The boosted model learns from days 1.. (day 0 has no history); the others read
        # their history from day 0 on.
        learnt = y[:split] if estimator == BOOSTED else units[: days - hold]
        if not learnt.any():
            raise TrainingError("No unit was sold before the held-back days: nothing to learn.")
        held = _fit(params, x[:split], y[:split])
        mae, rmse = _errors(y[split:], _predict(held, x[split:]))
        naive_mae, naive_rmse = _errors(y[split:], x[split:, LAG_1])
        metrics = {
            "estimator": estimator, "estimator_reason": reason,
            "mae": mae, "rmse": rmse, "naive_mae": naive_mae, "naive_rmse": naive_rmse,
            "mae_vs_naive": round(mae / naive_mae, 4) if naive_mae else None,
            "beats_naive": mae < naive_mae or (mae == naive_mae == 0),
            "holdout_days": hold, "holdout_from": (last - dt.timedelta(days=hold - 1)).isoformat(),
            "holdout_until": last.isoformat(), "holdout_rows": int(len(y) - split),
            "train_rows": int(split),
        }  # fmt: skip
        model = _fit(params, x, y)  # the stored model learns from every day
        artifact = {
            "format": 1, "estimator": model, "first_day": first, "products": products,
            "units": units.astype(np.int32), "horizon_days": params["horizon_days"],
        }  # fmt: skip
        effective = {**params, "until": until, "holdout_days": hold}
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

"""Training as a remote procedure call: the `product-demand` model, trained for real.

The data is merged through the real merge (which keeps `metrics_product_day`): a few
products whose daily units follow a weekly pattern and a trend, with Poisson noise,
so that a model can honestly beat the naive forecast (yesterday's value).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections import defaultdict

import numpy as np
import pytest
from auditlog.models import LogEntry
from django.db import connection

from accounts.models import Grant
from datalake.celery import app as celery_app
from datalake.models import Resource
from ingestion.rates import RateTable
from ingestion.sample_data import APPROX_RATE, DEMO_DAYS, DEMO_PER_DAY, generate
from ingestion.validation import validate_transaction
from lineage.models import RequestLog
from metrics.ml import artifacts
from metrics.ml.models import MLModel, ModelVersion, Training
from metrics.ml.services import training_execute
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row

LAST_DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
DAYS = 70
BASE = {"P-ALPHA": 14.0, "P-BETA": 6.0, "P-GAMMA": 22.0, "P-DELTA": 3.0, "P-EPS": 9.0}
WEEKLY = (0.75, 0.85, 0.95, 1.05, 1.3, 1.75, 0.55)  # Monday .. Sunday
TRAININGS = "/api/v1/ml/trainings/"
PREDICT = "/api/v1/ml/models/product-demand/predict/"


def demand_rows(days: int = DAYS, seed: int = 7, prefix: str = "ML") -> tuple[list, dict]:
    """Transactions of `days` days ending on LAST_DAY, and the completed units per
    (product, day) they make."""
    rng, noise = random.Random(seed), np.random.default_rng(seed)
    rows, units, n = [], defaultdict(int), 0
    for d in range(days):
        day = LAST_DAY - dt.timedelta(days=days - 1 - d)
        for product, base in BASE.items():
            left = int(noise.poisson(base * WEEKLY[day.weekday()] * (1 + 0.012 * d)))
            while left:
                quantity = min(left, rng.randint(1, 3))
                status = "completed" if rng.random() > 0.05 else "refunded"
                stamp = dt.datetime.combine(day, dt.time(rng.randint(0, 23)), dt.UTC)
                stamp += dt.timedelta(minutes=rng.randint(0, 59))
                rows.append(
                    row(n, transaction_id=f"{prefix}-{n:06d}", product_id=product, status=status,
                        quantity=quantity, timestamp=stamp)
                )  # fmt: skip
                if status == "completed":
                    units[(product, day)] += quantity
                    left -= quantity
                n += 1
    return rows, units


@pytest.fixture
def sales(db, lake):
    rows, units = demand_rows()
    merge(rows)
    return units


@pytest.fixture
def analyst(db):
    """Reads and writes `transactions`: training needs both."""
    user = make_user("ana")
    give(user, "transactions", "read")
    give(user, "transactions", "write")
    return user


@pytest.fixture
def train(django_capture_on_commit_callbacks):
    """POST a training; Celery eager, so its task runs when the request commits."""
    celery_app.conf.task_always_eager = True

    def post(client, body=None):
        body = {"model": "product-demand"} if body is None else body
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(TRAININGS, body, format="json")

    yield post
    celery_app.conf.task_always_eager = False


def test_training_beats_the_naive_forecast_and_predicts(analyst, sales, train, lake):
    api = client_for(analyst)
    response = train(api)
    assert response.status_code == 202, response.json()
    created = response.json()
    assert created["status"] == "queued" and created["model"] == "product-demand"
    training = api.get(created["url"]).json()
    assert training["status"] == "succeeded", training["error"]
    metrics = training["metrics"]
    print("product-demand metrics:", json.dumps(metrics))
    assert metrics["mae"] < metrics["naive_mae"] and metrics["rmse"] < metrics["naive_rmse"]
    assert metrics["estimator"] == "boosted" and metrics["beats_naive"] is True
    assert metrics["mae_vs_naive"] == round(metrics["mae"] / metrics["naive_mae"], 4)
    assert metrics["holdout_days"] == 14 and metrics["holdout_until"] == LAST_DAY.isoformat()
    assert metrics["holdout_rows"] == 14 * len(BASE)
    assert training["promotion"]["became_current"] is True
    assert training["promotion"]["previous_version"] is None
    assert training["model_version"] == 1
    assert training["data_version"] == Resource.objects.get(name="transactions").current_version

    folder = lake / "models" / "product-demand" / "v1"
    meta = json.loads((folder / "metadata.json").read_text())
    assert (folder / "model.joblib").is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["v1"]  # no staging folder left
    assert meta["version"] == 1 and meta["metrics"] == metrics
    assert meta["data"]["version"] == training["data_version"]
    assert meta["data"]["resource"] == "transactions" and meta["data"]["products"] == len(BASE)
    assert meta["requested_by"] == "ana" and meta["trained_at"]
    assert meta["params"]["holdout_days"] == 14 and meta["params"]["max_iter"] == 100

    tomorrow = (LAST_DAY + dt.timedelta(days=1)).isoformat()
    answer = api.post(PREDICT, {"product_id": "P-GAMMA", "date": tomorrow}, format="json")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["model_version"] == 1 and body["days_ahead"] == 1 and body["actual"] is None
    assert 5 < body["prediction"] < 80
    inside = LAST_DAY - dt.timedelta(days=10)
    body = api.post(PREDICT, {"product_id": "P-DELTA", "date": inside}, format="json").json()
    assert body["actual"] == sales[("P-DELTA", inside)] and body["days_ahead"] == 0
    far = (LAST_DAY + dt.timedelta(days=20)).isoformat()
    body = api.post(PREDICT, {"product_id": "P-ALPHA", "date": far}, format="json").json()
    assert body["days_ahead"] == 20 and body["prediction"] > 0

    second = api.get(train(api).json()["url"]).json()
    assert (second["status"], second["model_version"]) == ("succeeded", 2)
    # The same data and parameters score the same: as good as the current, it replaces it.
    assert second["promotion"] == {
        "became_current": True, "previous_version": 1,
        "previous_mae_vs_naive": metrics["mae_vs_naive"],
        "mae_vs_naive": metrics["mae_vs_naive"],
    }  # fmt: skip
    body = api.post(PREDICT, {"product_id": "P-GAMMA", "date": tomorrow}, format="json").json()
    assert body["model_version"] == 2
    models = api.get("/api/v1/ml/models/").json()
    assert models["count"] == 1
    model = models["results"][0]
    assert (model["name"], model["current_version"], model["versions_count"]) == (
        "product-demand", 2, 2
    )  # fmt: skip
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert model["versions"][0]["path"] == "models/product-demand/v2"
    versions = api.get(model["versions_url"]).json()
    assert versions["count"] == 2 and versions["results"][0]["training_id"] == second["id"]
    assert api.get(model["versions_url"], {"page": 2}).status_code == 404


def test_training_on_the_demo_sample_data_beats_the_naive_forecast(analyst, lake, tmp_path):
    """The files `make demo` writes (`generate_sample_data`'s defaults, ending today),
    every line validated as the pipeline does, merged; today is not over and is not
    learnt from. The demo has no seasonality: the boosted model wins on noise."""
    today = dt.datetime.now(dt.UTC).date()
    end = today - dt.timedelta(days=1)
    generate(tmp_path, days=DEMO_DAYS, per_day=DEMO_PER_DAY, seed=42, end_date=today)
    rates = RateTable({c: [("2000-01-01", str(rate))] for c, rate in APPROX_RATE.items()})
    rows = {}
    for path in sorted((tmp_path / "transactions").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            good, _reason = validate_transaction(line, rates)
            if good:
                rows[good["transaction_id"]] = {**good, "line": number}
    merge(list(rows.values()))
    training = Training.objects.create(model_name="product-demand", requested_by=analyst)
    done = training_execute(training.pk)
    assert done.status == "succeeded", done.error
    metrics = done.metrics
    print("product-demand on the demo data:", json.dumps(metrics))
    assert (metrics["estimator"], metrics["holdout_days"]) == ("boosted", 14)
    assert metrics["mae"] < metrics["naive_mae"] and metrics["rmse"] < metrics["naive_rmse"]
    assert metrics["holdout_until"] == end.isoformat()
    product = next(r["product_id"] for r in rows.values() if r["status"] == "completed")
    body = {"product_id": product, "date": today.isoformat()}
    answer = client_for(analyst).post(PREDICT, body, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["days_ahead"] == 1 and answer.json()["prediction"] >= 0


def test_the_shortest_history_trains(analyst, db, lake):
    """29 days: no day of the learning window has a 28-day lag (an all-missing feature)."""
    merge(demand_rows(days=29)[0])
    training = Training.objects.create(model_name="product-demand", requested_by=analyst)
    done = training_execute(training.pk)
    assert (done.status, done.model_version) == ("succeeded", 1), done.error


def test_predict_before_any_training_is_a_409(analyst, sales):
    response = client_for(analyst).post(
        PREDICT, {"product_id": "P-ALPHA", "date": LAST_DAY.isoformat()}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "model_not_trained"
    model = client_for(analyst).get("/api/v1/ml/models/product-demand/").json()
    assert model["current_version"] is None and model["versions"] == []


def test_without_read_on_transactions_nothing_is_trained_or_predicted(alice, staff, sales, train):
    api = client_for(alice)
    response = train(api)
    assert response.status_code == 403 and "`read` and `write`" in response.json()["detail"]
    assert not Training.objects.exists()
    body = {"product_id": "P-ALPHA", "date": LAST_DAY.isoformat()}
    assert api.post(PREDICT, body, format="json").status_code == 403
    assert api.get("/api/v1/ml/models/product-demand/").status_code == 403
    assert api.get("/api/v1/ml/models/product-demand/versions/").status_code == 403
    assert api.get("/api/v1/ml/models/").json()["count"] == 0
    assert client_for(staff).get("/api/v1/ml/models/").json()["count"] == 1
    log = RequestLog.objects.filter(path=TRAININGS).get()
    assert (log.username, log.status_code, log.resource) == ("alice", 403, "transactions")


def test_a_restricted_read_grant_may_not_train(db, sales, train):
    user = make_user("rita")
    give(user, "transactions", "read", row_filter={"country": ["FR"]})
    give(user, "transactions", "write")
    response = train(client_for(user))
    assert response.status_code == 403 and response.json()["code"] == "restricted_grant"


def test_only_the_requester_and_staff_see_a_training(analyst, staff, sales, train):
    mine = train(client_for(analyst)).json()
    olga = make_user("olga")
    give(olga, "transactions", "read")
    assert client_for(olga).get(mine["url"]).status_code == 404
    assert client_for(olga).get(TRAININGS).json()["count"] == 0
    assert client_for(staff).get(mine["url"]).status_code == 200
    listed = client_for(analyst).get(TRAININGS, {"status": "succeeded"}).json()
    assert [t["id"] for t in listed["results"]] == [mine["id"]]
    assert client_for(analyst).get(TRAININGS, {"colour": "red"}).status_code == 400


def test_a_training_is_audited(analyst, sales, train):
    created = train(client_for(analyst), {"model": "product-demand", "params": {"max_iter": 50}})
    log = RequestLog.objects.filter(path=TRAININGS, method="POST").get()
    assert (log.username, log.status_code, log.resource) == ("ana", 202, "transactions")
    assert log.body == {"model": "product-demand", "params": {"max_iter": 50}}
    training = Training.objects.get(pk=created.json()["id"])
    entries = LogEntry.objects.get_for_object(training)
    assert entries.filter(action=LogEntry.Action.CREATE, actor__username="ana").exists()
    published = LogEntry.objects.get_for_object(training.published)
    assert published.filter(action=LogEntry.Action.CREATE).exists()
    current = LogEntry.objects.get_for_object(MLModel.objects.get(name="product-demand"))
    assert current.filter(changes_text__contains="current_version").exists() or any(
        "current_version" in (e.changes or {}) for e in current
    )


@pytest.mark.parametrize(
    "body",
    [
        {"model": "weather"},
        {"params": {}},
        {"model": "product-demand", "params": []},
        {"model": "product-demand", "params": {"colour": "red"}},
        {"model": "product-demand", "params": {"holdout_days": 0}},
        {"model": "product-demand", "params": {"learning_rate": "fast"}},
        {"model": "product-demand", "params": {"since": "2026-11-10", "until": "2026-11-01"}},
        {"model": "product-demand", "params": {"until": "yesterday"}},
        {"model": "product-demand", "priority": "high"},
    ],
)
def test_bad_training_requests_are_400(analyst, body):
    response = client_for(analyst).post(TRAININGS, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["detail"]
    assert not Training.objects.exists()


def test_bad_predictions_are_400_or_404(analyst, sales, train):
    api = client_for(analyst)
    train(api, {"model": "product-demand", "params": {"max_iter": 30, "horizon_days": 7}})
    first = LAST_DAY - dt.timedelta(days=DAYS - 1)
    cases = {
        "date": [
            {"product_id": "P-ALPHA", "date": "2026-13-01"},
            {"product_id": "P-ALPHA", "date": "tomorrow"},
            {"product_id": "P-ALPHA"},
            {"product_id": "P-ALPHA", "date": first.isoformat()},  # no day before it
            {"product_id": "P-ALPHA", "date": (LAST_DAY + dt.timedelta(days=8)).isoformat()},
        ],
        "product_id": [
            {"product_id": "NOPE", "date": LAST_DAY.isoformat()},
            {"date": LAST_DAY.isoformat()},
            {"product_id": "x" * 65, "date": LAST_DAY.isoformat()},
        ],
        "colour": [{"product_id": "P-ALPHA", "date": LAST_DAY.isoformat(), "colour": "red"}],
    }
    for field, bodies in cases.items():
        for body in bodies:
            response = api.post(PREDICT, body, format="json")
            assert response.status_code == 400, (body, response.json())
            assert field in response.json()["errors"], (body, response.json())
    assert api.post(PREDICT, [1, 2], format="json").status_code == 400
    ok = {"product_id": "P-ALPHA", "date": (LAST_DAY + dt.timedelta(days=7)).isoformat()}
    assert api.post(PREDICT, ok, format="json").status_code == 200
    unknown = api.post("/api/v1/ml/models/weather/predict/", ok, format="json")
    assert unknown.status_code == 404 and unknown.json()["detail"]
    assert api.get("/api/v1/ml/models/weather/").status_code == 404


def test_a_failing_training_ends_failed_with_its_error(analyst, db, lake, train):
    api = client_for(analyst)
    nothing = api.get(train(api).json()["url"]).json()
    assert nothing["status"] == "failed" and "nothing to learn" in nothing["error"]
    assert nothing["model_version"] is None and nothing["finished_at"]
    merge(demand_rows(days=1, prefix="ONE")[0])
    one = api.get(train(api).json()["url"]).json()
    assert one["status"] == "failed" and "at least 2 days" in one["error"], one["error"]
    merge(demand_rows(days=20, prefix="SHORT")[0])
    boosted = {"model": "product-demand", "params": {"estimator": "boosted"}}
    short = api.get(train(api, boosted).json()["url"]).json()
    assert short["status"] == "failed" and "at least 22 days" in short["error"], short["error"]
    held = {"model": "product-demand", "params": {"estimator": "boosted", "holdout_days": 14}}
    short = api.get(train(api, held).json()["url"]).json()
    assert short["status"] == "failed" and "at least 29 days" in short["error"], short["error"]
    assert not ModelVersion.objects.exists()
    assert not (lake / "models" / "product-demand").exists() or not any(
        (lake / "models" / "product-demand").iterdir()
    )
    response = api.post(PREDICT, {"product_id": "P-ALPHA", "date": LAST_DAY}, format="json")
    assert response.json()["code"] == "model_not_trained"


def test_a_revoked_grant_fails_the_queued_training(analyst, sales):
    training = Training.objects.create(model_name="product-demand", requested_by=analyst)
    Grant.objects.filter(user=analyst).delete()
    done = training_execute(training.pk)
    assert done.status == "failed" and "read" in done.error
    assert not ModelVersion.objects.exists()


def test_a_redelivered_task_is_idempotent(analyst, sales, lake):
    training = Training.objects.create(
        model_name="product-demand", requested_by=analyst, params={"max_iter": 30}
    )
    assert training_execute(training.pk).status == "succeeded"
    assert training_execute(training.pk).model_version == 1  # finished: left alone
    assert ModelVersion.objects.count() == 1
    # A worker died after renaming v2 into place but before its transaction committed:
    (lake / "models" / "product-demand" / "v2").mkdir()
    (lake / "models" / "product-demand" / "v2" / "half-written").write_text("x")
    # The same data and parameters: the same score, and a tie goes to the newer version.
    again = Training.objects.create(
        model_name="product-demand", requested_by=analyst, params={"max_iter": 30}
    )
    Training.objects.filter(pk=again.pk).update(status="running", attempts=1)
    done = training_execute(again.pk)
    assert (done.status, done.model_version, done.attempts) == ("succeeded", 2, 2)
    assert not (lake / "models" / "product-demand" / "v2" / "half-written").exists()
    assert MLModel.objects.get().current_version == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_trainings_get_distinct_versions(lake):
    user = make_user("ana")
    give(user, "transactions", "read")
    give(user, "transactions", "write")
    merge(demand_rows()[0])
    trainings = [
        Training.objects.create(
            model_name="product-demand", requested_by=user, params={"max_iter": 20}
        )
        for _ in range(3)
    ]
    artifacts.clear_cache()
    results = {}

    def work(pk):
        try:
            results[pk] = training_execute(pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(t.pk,)) for t in trainings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(r.model_version for r in results.values()) == [1, 2, 3], [
        (r.status, r.error) for r in results.values()
    ]
    assert sorted(p.name for p in (lake / "models" / "product-demand").iterdir()) == [
        "v1", "v2", "v3"
    ]  # fmt: skip
    assert MLModel.objects.get().current_version == 3


# ---------------------------------------------- short histories: the model the data supports


@pytest.mark.parametrize(
    ("days", "estimator", "holdout"),
    [
        (2, "mean", 1),
        (7, "mean", 2),
        (9, "mean", 3),
        (10, "seasonal-naive", 3),
        (21, "seasonal-naive", 7),
        (22, "boosted", 7),
        (28, "boosted", 13),
        (29, "boosted", 14),
    ],
)
def test_a_few_days_of_sales_train_the_model_they_support(
    analyst, db, lake, days, estimator, holdout
):
    """Below the boosted model's minimum a seasonal-naive (same weekday last week) or mean
    forecaster is chosen, with a shorter holdout; each is scored against the naive forecast
    and `predict/` answers from it."""
    merge(demand_rows(days=days)[0])
    training = Training.objects.create(model_name="product-demand", requested_by=analyst)
    done = training_execute(training.pk)
    assert done.status == "succeeded", done.error
    metrics = done.metrics
    assert (metrics["estimator"], metrics["holdout_days"]) == (estimator, holdout), metrics
    assert metrics["holdout_rows"] == holdout * len(BASE)
    assert {"naive_mae", "naive_rmse", "mae_vs_naive", "beats_naive"} <= set(metrics)
    assert str(days) in metrics["estimator_reason"]
    tomorrow = (LAST_DAY + dt.timedelta(days=1)).isoformat()
    body = {"product_id": "P-GAMMA", "date": tomorrow}
    answer = client_for(analyst).post(PREDICT, body, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["prediction"] > 0


def test_the_seasonal_naive_forecast_repeats_last_week(analyst, db, lake):
    rows, units = demand_rows(days=14)
    merge(rows)
    training = Training.objects.create(
        model_name="product-demand", requested_by=analyst, params={"estimator": "seasonal-naive"}
    )
    assert training_execute(training.pk).status == "succeeded"
    api = client_for(analyst)
    inside = LAST_DAY - dt.timedelta(days=2)
    body = api.post(PREDICT, {"product_id": "P-ALPHA", "date": inside.isoformat()}, format="json")
    body = body.json()
    assert body["prediction"] == units[("P-ALPHA", inside - dt.timedelta(days=7))]
    assert body["actual"] == units[("P-ALPHA", inside)]
    ahead = LAST_DAY + dt.timedelta(days=3)
    body = api.post(PREDICT, {"product_id": "P-ALPHA", "date": ahead.isoformat()}, format="json")
    body = body.json()
    assert body["prediction"] == units[("P-ALPHA", ahead - dt.timedelta(days=7))]


def test_a_forced_estimator_and_holdout_are_kept_or_refused(analyst, db, lake, train):
    merge(demand_rows(days=9)[0])
    api = client_for(analyst)
    mean = {"model": "product-demand", "params": {"estimator": "mean", "holdout_days": 4}}
    done = api.get(train(api, mean).json()["url"]).json()
    assert done["status"] == "succeeded", done["error"]
    assert (done["metrics"]["estimator"], done["metrics"]["holdout_days"]) == ("mean", 4)
    too_long = {"model": "product-demand", "params": {"holdout_days": 9}}
    failed = api.get(train(api, too_long).json()["url"]).json()
    assert failed["status"] == "failed" and "at least 10 days" in failed["error"], failed["error"]
    seasonal = {"model": "product-demand", "params": {"estimator": "seasonal-naive"}}
    failed = api.get(train(api, seasonal).json()["url"]).json()
    assert failed["status"] == "failed" and "seasonal-naive" in failed["error"], failed["error"]
    bad = api.post(
        TRAININGS, {"model": "product-demand", "params": {"estimator": "magic"}}, format="json"
    )
    assert bad.status_code == 400 and "params.estimator" in bad.json()["errors"]
    schema = api.get("/api/v1/ml/models/product-demand/").json()["params"]["properties"]
    assert schema["estimator"]["enum"] == ["auto", "boosted", "seasonal-naive", "mean"]


# ------------------------------------------------------------------ who may train, and how often


def test_training_needs_write_on_the_resource(db, sales, train):
    reader = make_user("rhea")
    give(reader, "transactions", "read")
    api = client_for(reader)
    response = train(api)
    assert response.status_code == 403, response.json()
    assert "`write`" in response.json()["detail"] and response.json()["code"]
    assert not Training.objects.exists()
    writer = make_user("wes")
    give(writer, "transactions", "write")
    assert train(client_for(writer)).status_code == 403  # write alone does not read the data
    give(reader, "transactions", "write")
    assert train(api).status_code == 202


def test_a_queued_training_whose_requester_lost_write_fails(analyst, sales):
    training = Training.objects.create(model_name="product-demand", requested_by=analyst)
    Grant.objects.filter(user=analyst, privilege="write").delete()
    done = training_execute(training.pk)
    assert done.status == "failed" and "write" in done.error
    assert not ModelVersion.objects.exists()


def test_a_user_has_at_most_the_set_number_of_unfinished_trainings(analyst, sales, settings):
    settings.TRAININGS_MAX_RUNNING_PER_USER = 2
    api = client_for(analyst)
    first = api.post(TRAININGS, {"model": "product-demand"}, format="json")
    second = api.post(TRAININGS, {"model": "product-demand"}, format="json")
    assert (first.status_code, second.status_code) == (202, 202)
    third = api.post(TRAININGS, {"model": "product-demand"}, format="json")
    assert third.status_code == 429, third.json()
    assert third.json()["code"] == "too_many_running_trainings" and "2" in third.json()["detail"]
    assert Training.objects.count() == 2
    other = make_user("otto")
    give(other, "transactions", "read")
    give(other, "transactions", "write")
    response = client_for(other).post(TRAININGS, {"model": "product-demand"}, format="json")
    assert response.status_code == 202
    training_execute(first.json()["id"])  # finished: it no longer counts
    assert api.post(TRAININGS, {"model": "product-demand"}, format="json").status_code == 202


def test_an_abandoned_training_no_longer_counts(analyst, sales, settings):
    """A training unfinished past ML_TRAINING_TIMEOUT lost its worker or its task."""
    settings.TRAININGS_MAX_RUNNING_PER_USER = 1
    api = client_for(analyst)
    stuck = api.post(TRAININGS, {"model": "product-demand"}, format="json").json()
    assert api.post(TRAININGS, {"model": "product-demand"}, format="json").status_code == 429
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.ML_TRAINING_TIMEOUT + 120)
    Training.objects.filter(pk=stuck["id"]).update(created_at=long_ago)
    assert api.post(TRAININGS, {"model": "product-demand"}, format="json").status_code == 202


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_do_not_pass_the_limit_together(lake, settings):
    settings.TRAININGS_MAX_RUNNING_PER_USER = 1
    user = make_user("ana")
    give(user, "transactions", "read")
    give(user, "transactions", "write")
    merge(demand_rows(days=10)[0])
    barrier, codes = threading.Barrier(4), []

    def post():
        try:
            api = client_for(user)
            barrier.wait()
            response = api.post(TRAININGS, {"model": "product-demand"}, format="json")
            codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [202, 429, 429, 429], codes
    assert Training.objects.filter(requested_by=user).count() == 1


# ---------------------------------------------- a new version becomes current if it is better


def test_a_worse_version_is_kept_but_not_current_until_promoted(analyst, sales, train, lake):
    api = client_for(analyst)
    good = api.get(train(api).json()["url"]).json()
    assert good["model_version"] == 1 and good["promotion"]["became_current"]
    mean = {"model": "product-demand", "params": {"estimator": "mean"}}
    worse = api.get(train(api, mean).json()["url"]).json()
    assert (worse["status"], worse["model_version"]) == ("succeeded", 2), worse["error"]
    assert worse["metrics"]["mae_vs_naive"] > good["metrics"]["mae_vs_naive"]
    assert worse["promotion"] == {
        "became_current": False, "previous_version": 1,
        "previous_mae_vs_naive": good["metrics"]["mae_vs_naive"],
        "mae_vs_naive": worse["metrics"]["mae_vs_naive"],
    }  # fmt: skip
    assert (lake / "models" / "product-demand" / "v2" / "model.joblib").is_file()
    model = api.get("/api/v1/ml/models/product-demand/").json()
    assert (model["current_version"], model["versions_count"]) == (1, 2)
    assert [(v["version"], v["current"]) for v in model["versions"]] == [(2, False), (1, True)]
    tomorrow = (LAST_DAY + dt.timedelta(days=1)).isoformat()
    body = {"product_id": "P-GAMMA", "date": tomorrow}
    assert api.post(PREDICT, body, format="json").json()["model_version"] == 1

    promote = "/api/v1/ml/models/product-demand/promote/"
    reader = make_user("rhea")
    give(reader, "transactions", "read")
    refused = client_for(reader).post(promote, {"version": 2}, format="json")
    assert refused.status_code == 403 and "`write`" in refused.json()["detail"]
    for bad in ({"version": 9}, {"version": "two"}, {}, {"version": 2, "why": "x"}, [2]):
        response = api.post(promote, bad, format="json")
        assert response.status_code in (400, 404), (bad, response.json())
        assert response.json()["code"] and response.json()["detail"]
    promoted = api.post(promote, {"version": 2}, format="json")
    assert promoted.status_code == 200, promoted.json()
    assert promoted.json()["current_version"] == 2
    assert api.post(PREDICT, body, format="json").json()["model_version"] == 2
    current = LogEntry.objects.get_for_object(MLModel.objects.get(name="product-demand"))
    assert current.filter(actor__username="ana").exists()
    log = RequestLog.objects.filter(path=promote, status_code=200).get()
    assert (log.username, log.resource) == ("ana", "transactions")

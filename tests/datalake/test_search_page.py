"""The browser's Search page (the browsable `GET /api/v1/search/`): its form carries every
parameter the API requires, so that submitting it as shown searches instead of
answering 400 (`since` is required and the form used to have only `q`)."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.support.factories import give, make_user

PAGE = "/api/v1/search/"


class FormInputs(HTMLParser):
    """The inputs of the portal's query form: {name: (type, value)}."""

    def __init__(self):
        super().__init__()
        self.inside, self.inputs = False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "portal-query" in (attrs.get("class") or ""):
            self.inside = True
        elif tag == "input" and self.inside and attrs.get("name"):
            self.inputs[attrs["name"]] = (attrs.get("type"), attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def form_of(response) -> dict:
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    parser = FormInputs()
    parser.feed(response.content.decode())
    return parser.inputs


@pytest.fixture
def browser(db) -> Client:
    user = make_user("sam")
    give(user, "transactions", "read")
    client = Client()
    client.force_login(user)
    return client


def test_the_search_form_has_a_date_with_a_default_and_submitting_it_searches(browser):
    inputs = form_of(browser.get(PAGE, HTTP_ACCEPT="text/html"))
    assert inputs["q"][0] == "search"
    kind, since = inputs["since"]
    assert kind == "date"
    default = dt.date.fromisoformat(since)
    today = dt.datetime.now(dt.UTC).date()
    assert default == today - dt.timedelta(days=30)

    filled = {name: value for name, (_kind, value) in inputs.items() if value}
    response = browser.get(PAGE, {**filled, "q": "FR"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    again = form_of(response)  # the answer's form keeps what was asked
    assert again["q"][1] == "FR" and again["since"][1] == since
    body = browser.get(PAGE, {**filled, "q": "FR", "format": "json"}).json()
    assert body["since"] == since and body["q"] == "FR"


def test_the_form_keeps_a_date_typed_by_the_user_and_a_bad_one_is_a_400(browser):
    response = browser.get(PAGE, {"q": "FR", "since": "2024-02-29"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert form_of(response)["since"] == ("date", "2024-02-29")
    bad = browser.get(PAGE, {"q": "FR", "since": "2024-02-30"}, HTTP_ACCEPT="text/html")
    assert bad.status_code == 400
    assert form_of(bad)["since"] == ("date", "2024-02-30")  # shown back to be corrected

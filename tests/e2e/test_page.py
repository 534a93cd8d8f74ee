"""The prediction page of each model server, in a real browser (Chromium, through
Playwright): the form built from /model, its answers beside /predict's, the server's own
error messages, and the live panel following a promotion without a reload.

The browser: LAB_BROWSER, else chromium (or chromium-browser, google-chrome) on PATH,
else Playwright's own. Without one the
tests skip, unless LAB_REQUIRE_BROWSER=1 (CI), where a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import requests

from tests.e2e.labtools import promote_new_candidate

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture says so: a skip, or a failure when required
    sync_playwright = None

pytestmark = pytest.mark.e2e

SERVERS = ["staging", "production"]
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Debian's package, other distributions', and the Chrome of GitHub's Ubuntu runners.
SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _no_browser(reason: str):
    if os.environ.get("LAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (LAB_REQUIRE_BROWSER=1: a browser is required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        _no_browser("playwright is not installed (make venv installs it)")
    executable = os.environ.get("LAB_BROWSER") or next(
        (found for name in SYSTEM_BROWSERS if (found := shutil.which(name))), None
    )
    if executable and not os.access(executable, os.X_OK):
        _no_browser(f"LAB_BROWSER={executable} is not an executable file")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        except PlaywrightError as exc:
            first = str(exc).strip().splitlines()[0]
            _no_browser(
                f"no browser to drive ({first}): set LAB_BROWSER, install chromium, "
                "or run `playwright install chromium`"
            )
        yield launched
        launched.close()


class Opened:
    """A page open on one server, with the errors its console reported."""

    def __init__(self, page, url: str):
        self.page, self.url, self.errors = page, url, []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.goto(f"{url}/")

    def by(self, testid: str):
        return self.page.get_by_test_id(testid)

    def field(self, feature: str):
        return self.page.get_by_label(feature, exact=True)

    def predict(self) -> None:
        """Press Predict and wait for this press's answer (a result or an error)."""
        form = self.by("predict-form")
        before = int(form.get_attribute("data-answers") or 0)
        self.by("predict").click()
        expect(form).to_have_attribute("data-answers", str(before + 1))


@pytest.fixture
def open_page(browser):
    contexts = []

    def _open(url: str, version: str) -> Opened:
        context = browser.new_context()
        contexts.append(context)
        opened = Opened(context.new_page(), url)
        expect(opened.by("live-version")).to_have_text(version)  # the form is built first
        return opened

    yield _open
    for context in contexts:
        context.close()


def _model(url: str) -> dict:
    return requests.get(f"{url}/model", timeout=10).json()


def _predict(url: str, body: str) -> requests.Response:
    return requests.post(
        f"{url}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10
    )


def _expect_answer(opened: Opened, url: str, row: dict, info: dict) -> None:
    """The page shows what /predict answers for `row`, named and attributed."""
    answer = _predict(url, json.dumps({"instances": [row]})).json()
    label = answer["predictions"][0]
    expect(opened.by("result")).to_be_visible()
    expect(opened.by("error")).to_be_hidden()
    expect(opened.by("prediction")).to_have_text(str(label))
    expect(opened.by("class-name")).to_have_text(info["class_names"][label])
    expect(opened.by("answered-by")).to_have_text(
        f"answered by version {answer['model_version']} @{answer['alias']}, "
        f"git sha {info['git_sha']}"
    )


@pytest.mark.parametrize("server", SERVERS)
def test_the_page_opens_with_one_field_per_feature(lab, settled, open_page, server):
    url = getattr(lab, server)
    info = _model(url)
    assert info["class_names"], "the model records no class names: trained before they were"
    opened = open_page(url, settled[server])
    expect(opened.by("feature-input")).to_have_count(len(info["features"]))
    for feature in info["features"]:
        placeholder = opened.field(feature).get_attribute("placeholder")
        assert float(placeholder) == info["input_example"][feature], feature
    expect(opened.by("live-alias")).to_have_text(f"@{server}")
    expect(opened.by("live-change")).to_be_hidden()
    expect(opened.by("predict")).to_be_enabled()
    assert opened.errors == []  # a CSP violation, a failed asset or a script error


@pytest.mark.parametrize("server", SERVERS)
def test_a_dataset_row_gets_the_prediction_predict_gives(lab, settled, open_page, server):
    from trainer import data

    url = getattr(lab, server)
    info = _model(url)
    dataset = lab.client().get_model_version(lab.model_name, info["version"]).tags["dataset"]
    X = data.load(dataset).X[info["features"]]
    opened = open_page(url, settled[server])
    for i in (0, len(X) // 2, len(X) - 1):  # iris: one of each class
        row = {f: X[f].iloc[i].item() for f in info["features"]}
        for feature, value in row.items():
            opened.field(feature).fill(repr(value))
        opened.predict()
        _expect_answer(opened, url, row, info)


@pytest.mark.parametrize("server", SERVERS)
def test_an_empty_form_predicts_on_the_input_example(lab, settled, open_page, server):
    url = getattr(lab, server)
    info = _model(url)
    opened = open_page(url, settled[server])
    opened.predict()
    _expect_answer(opened, url, info["input_example"], info)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "typed",
    [
        "1e400",  # a number out of range: the browser's JSON would turn it into null
        "five",
    ],
)
def test_a_bad_value_shows_the_servers_own_error(lab, settled, open_page, server, typed):
    url = getattr(lab, server)
    info = _model(url)
    first = info["features"][0]
    opened = open_page(url, settled[server])
    opened.field(first).fill(typed)
    opened.predict()
    # What the server says to the same row, sent by hand: the rest is the input example.
    sent = json.dumps(typed) if typed == "five" else typed
    row = {**info["input_example"], first: "@BAD@"}
    r = _predict(url, json.dumps({"instances": [row]}).replace('"@BAD@"', sent))
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    assert first in message
    expect(opened.page.get_by_role("alert")).to_have_text(message)
    expect(opened.by("result")).to_be_hidden()


def test_the_live_panel_follows_a_promotion_without_a_reload(lab, settled, open_page):
    before = settled
    pages = {server: open_page(getattr(lab, server), before[server]) for server in SERVERS}
    first = _model(lab.staging)["features"][0]
    for opened in pages.values():
        opened.page.evaluate("window.labMarker = 'same document'")
        opened.field(first).fill("5.5")
    version = promote_new_candidate(lab)  # staging, then production, change version
    for server, opened in pages.items():
        expect(opened.by("live-version")).to_have_text(version, timeout=60_000)
        expect(opened.by("live-change")).to_have_text(
            f"Now serving version {version} (was {before[server]})"
        )
        assert opened.page.evaluate("window.labMarker") == "same document", server
        expect(opened.field(first)).to_have_value("5.5")
        opened.predict()
        expect(opened.by("answered-by")).to_contain_text(f"answered by version {version} @{server}")

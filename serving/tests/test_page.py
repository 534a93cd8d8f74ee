"""The prediction page and what it reads from /model (unit; the browser test is in
tests/e2e/test_page.py)."""

import re

import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from serving import page
from serving.app import create_app
from serving.cache import ModelCache
from serving.config import ServingConfig
from serving.model import load_cached

from .conftest import StaticHolder

FILES = {
    "/": "text/html",
    "/static/page.css": "text/css",
    "/static/page.js": "text/javascript",
    "/static/icon.svg": "image/svg+xml",
}


@pytest.mark.parametrize(("path", "content_type"), list(FILES.items()))
def test_the_page_and_its_assets_are_served_with_the_csp_and_nosniff(client, path, content_type):
    r = client.get(path)
    assert r.status_code == 200
    assert r.mimetype == content_type
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    # Only this origin: nothing inline, nothing from elsewhere.
    for sources in csp.values():
        assert set(sources) <= {"'self'", "'none'"}, sources


def test_the_page_needs_nothing_its_csp_refuses(client):
    html = client.get("/").get_data(as_text=True)
    assert "<script" in html and "<link" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and "style=" not in html, "inline style"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "another host"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


@pytest.mark.parametrize("name", ["nope.js", "index.html", "..%2fapp.py", "page.JS"])
def test_an_unknown_static_file_is_a_json_404(client, name):
    r = client.get(f"/static/{name}")
    assert r.status_code == 404
    assert r.is_json and r.json["status"] == 404 and r.json["error"]
    assert "Content-Security-Policy" not in r.headers


def test_flask_serves_no_static_folder_of_its_own(client):
    # Flask's own /static route would serve every file of the folder, without the CSP.
    endpoints = {rule.endpoint for rule in client.application.url_map.iter_rules()}
    assert "static" not in endpoints
    assert client.get("/static/page.js").headers["Content-Security-Policy"] == page.CSP


def test_model_reports_types_and_no_example_or_class_names_when_it_has_none(client):
    info = client.get("/model").json
    assert info["types"] == ["double", "double", "long"]
    assert info["input_example"] is None
    assert info["class_names"] == []


@pytest.fixture(scope="module")
def iris_model_dir(tmp_path_factory) -> str:
    import mlflow.sklearn

    bunch = load_iris()
    X = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    path = tmp_path_factory.mktemp("model") / "m"
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=1000).fit(X, bunch.target),
        str(path),
        signature=infer_signature(X, bunch.target),
        input_example=X.iloc[[50, 0]],  # the form's placeholders: the first row
        metadata={"class_names": [str(n) for n in bunch.target_names]},
    )
    return str(path)


def test_model_reports_the_input_example_and_class_names_of_a_model_read_from_disk(
    tmp_path, iris_model_dir
):
    # The cache path: the model's files as kept on disk go through the same loading.
    cfg = ServingConfig(model_name="m", alias="staging", cache_dir=str(tmp_path / "cache"))
    ModelCache(cfg.cache_dir, "m", "staging").save(iris_model_dir, {"version": "3"})
    model = load_cached(cfg)
    info = create_app(cfg, holder=StaticHolder(model)).test_client().get("/model").json
    assert info["types"] == ["double"] * 4
    assert info["input_example"] == {
        "sepal length (cm)": 7.0,
        "sepal width (cm)": 3.2,
        "petal length (cm)": 4.7,
        "petal width (cm)": 1.4,
    }
    assert info["class_names"] == ["setosa", "versicolor", "virginica"]

"""The prediction page: a form built from the served model's signature, in the browser.

    GET /                 index.html
    GET /static/<name>    page.css, page.js, icon.svg

The files are read once from the package (serving/static/) and served from memory.
The page asks this server only (/model, /predict), so the Content-Security-Policy allows
nothing but this origin: no inline script or style, no other host, no framing.
"""

from __future__ import annotations

from importlib import resources

from flask import Flask, Response, jsonify

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
}
PAGE = "index.html"
ASSETS = ("page.css", "page.js", "icon.svg")


def _read() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("serving") / "static"
    return {
        name: ((folder / name).read_bytes(), CONTENT_TYPES[name.rsplit(".", 1)[1]])
        for name in (PAGE, *ASSETS)
    }


def _send(body: bytes, content_type: str) -> Response:
    response = Response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Small files, read from memory: always revalidate, so a new server's page is the one seen.
    response.headers["Cache-Control"] = "no-cache"
    return response


def register(app: Flask, holder, cfg) -> None:
    """Serve the page on `app`. The page learns the model from /model, so `holder` and
    `cfg` are not needed yet."""
    files = _read()

    @app.get("/")
    def page():
        return _send(*files[PAGE])

    @app.get("/static/<name>")
    def asset(name: str):
        if name not in ASSETS:
            return jsonify(error=f"no such file: /static/{name}", status=404), 404
        return _send(*files[name])

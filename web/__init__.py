"""The dashboard: server-rendered pages that a small script fills from the JSON API."""

from __future__ import annotations

from flask import Blueprint, render_template

from core.domains import normalize_domain

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)


@bp.get("/")
def dashboard() -> str:
    """The overview: top domains, the top five's chart, alerts, the request counter, sources."""
    return render_template("dashboard.html")


@bp.get("/ui/domains/<path:name>")
def domain(name: str) -> str | tuple[str, int]:
    """One domain: its chart, rates, limits and exceeded flags."""
    try:
        return render_template("domain.html", domain=normalize_domain(name))
    except ValueError as exc:
        # A page, not the API's JSON: a person typed this address.
        return render_template("error.html", message=f"{name!r} is not a domain: {exc}"), 404

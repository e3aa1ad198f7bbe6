"""Swagger UI's static files, served from the flask-swagger-ui wheel (no CDN)."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory

bp = Blueprint("swagger_static", __name__)
_DIST = Path(flask_swagger_ui.__file__).parent / "dist"


@bp.get("/docs/static/<path:filename>")
def swagger_static(filename: str) -> Response:
    """Serve one Swagger UI asset."""
    return send_from_directory(_DIST, filename, max_age=3600)

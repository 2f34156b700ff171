"""Where the web dashboard is and how a browser signs in to it: the paths it may load
without the token and the cookie that carries the token, which the token check
(burla.services.main_service.bearer) needs before FastAPI, and the dashboard, load."""

from __future__ import annotations

from pathlib import Path

COOKIE = "burla_token"
STATIC = Path(__file__).parent / "static"
FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PUBLIC_PATHS = (
    "/dashboard",
    "/dashboard/",
    "/dashboard/login",
    *(f"/dashboard/static/{name}" for name in FILES),
)
"""Paths a browser may load without the token (BearerAuth's `public`)."""

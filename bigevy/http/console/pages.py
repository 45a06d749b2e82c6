"""How console pages are drawn: Jinja2 templates (autoescaped: whatever a node, a document or
an operator wrote is shown as text), with who is signed in and what they may do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from bigevy.errors import BigEvyError
from bigevy.fleet.roles import ADMINS, OPERATORS, Caller

PREFIX = "/console"
HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")

#: The navigation, in the order people use it.
SECTIONS = [
    ("overview", "/console", "Overview"),
    ("fleet", "/console/fleet", "Fleet"),
    ("alerts", "/console/alerts", "Alerts"),
    ("updates", "/console/updates", "Updates"),
    ("knowledge", "/console/knowledge", "Knowledge"),
    ("review", "/console/review", "Review"),
    ("analytics", "/console/analytics", "Analytics"),
    ("models", "/console/models", "Models"),
]


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def when(seconds: float | None) -> str:
    """Unix seconds as people read them (UTC: the fleet spans time zones)."""
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    gone = max(0, time.time() - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if gone >= size:
            return f"{int(gone // size)} {unit} ago"
    return f"{int(gone)} s ago"


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["ago"] = ago


def render(
    request: Request, name: str, section: str = "", status_code: int = 200, **context: Any
) -> Response:
    """The page `name`, with the signed-in caller's role and CSRF token."""
    caller: Caller | None = getattr(request.state, "caller", None)
    context.update(
        section=section,
        sections=SECTIONS,
        caller=caller,
        can_operate=caller is not None and caller.role in OPERATORS,
        can_admin=caller is not None and caller.role in ADMINS,
        csrf=getattr(request.state, "csrf", ""),
    )
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


def error_page(error: BigEvyError, headers: dict[str, str] | None = None) -> HTMLResponse:
    """An error as a console page: the same message and status the API would give."""
    template = TEMPLATES.get_template("error.html")
    body = template.render(error=error, sections=[], caller=None, section="")
    return HTMLResponse(body, status_code=error.status_code, headers=headers)

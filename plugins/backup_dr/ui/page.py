"""Server-side HTML of the catalog page (Jinja2, autoescaped) and its static files.

The tables and badges are rendered here so the page is readable even before (or without)
JavaScript; ``static/catalog.js`` only draws the charts and localises times. Nothing is
loaded from outside the Airflow API server (air-gapped sites, offline machines); the
Content-Security-Policy sent with the page enforces that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}

_env = None


def human_bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def human_seconds(s: Any) -> str:
    """``850 ms``, ``4.2s``, ``42s``, ``12m 3s``, ``20h 5m``, ``1d 6h``: two units at most,
    enough to compare with an RPO or RTO (same form as ``seconds()`` in catalog.js)."""
    if not isinstance(s, (int, float)) or isinstance(s, bool):
        return "–"
    if s < 0:
        return "-" + human_seconds(-s)
    if s < 1:
        return f"{round(s * 1000)} ms"
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{round(s)}s"
    m = int(s // 60)
    h, d = m // 60, m // 1440
    big, small = (f"{d}d", h % 24) if d else ((f"{h}h", m % 60) if h else (f"{m}m", int(s % 60)))
    unit = "h" if d else ("m" if h else "s")
    return f"{big} {small}{unit}" if small else big


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` break-out)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _environment():
    global _env
    if _env is None:
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        _env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                           trim_blocks=True, lstrip_blocks=True)
        _env.filters.update(bytes=human_bytes, seconds=human_seconds)
    return _env


def render_page(data: dict[str, Any], *, cache_age: float, ttl: float) -> str:
    from markupsafe import Markup

    return _environment().get_template("catalog.html").render(
        data=data, cache_age=int(cache_age), ttl=int(ttl), data_json=Markup(json_for_script(data)))


def render_error(title: str, message: str, hint: str | None = None) -> str:
    return _environment().get_template("error.html").render(title=title, message=message, hint=hint)


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file of ``static/`` by bare name (no paths: nothing else on disk is reachable)."""
    path = STATIC_DIR / name
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return None
    return path.read_bytes(), STATIC_TYPES[path.suffix]

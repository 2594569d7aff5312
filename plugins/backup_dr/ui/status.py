"""Traffic-light rules of the catalog page, and the scrubber that keeps secrets off it.

The colours answer one question each, at a glance, for the person on call:

* **age vs RPO**: green while the freshest complete copy is younger than
  ``AMBER_FRACTION`` of the RPO, amber once the next backup is due soon (the RPO is
  being used up), red when the RPO is breached or there is no backup at all. Classes
  run on deploy (event-driven) have no age limit: green with a backup, amber without.
* **last drill vs RTO**: red when the drill failed or restored slower than the RTO (a
  real recovery would miss its objective), amber when it took over ``AMBER_FRACTION`` of
  the RTO, is older than the health check's staleness limit, or never happened.
* **verification**: the copy checks of :meth:`CatalogEntry.verification_state` (replication's
  read-back, ``verify`` re-hashes, what a drill's fetch showed): green when every checked
  copy is good, amber when one failed while another is good, red when all failed, grey
  when no copy was ever checked. Drills are shown apart (last drill vs RTO).

These mirror :mod:`backup_dr.core.health` (which alerts) so the page and the alerts agree;
the amber band is the page's early warning that health does not alert on.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from backup_dr.core.health import DRILL_STALE_AFTER

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
_RANK = {GREY: 0, GREEN: 1, AMBER: 2, RED: 3}

#: Share of the RPO / RTO after which the page turns amber.
AMBER_FRACTION = 0.75

#: Words other components use for a state, mapped to a colour (health report, PITR module).
_WORDS = {
    "healthy": GREEN, "ok": GREEN, "green": GREEN, "good": GREEN, "complete": GREEN,
    "warning": AMBER, "amber": AMBER, "stale": AMBER, "lagging": AMBER, "degraded": AMBER,
    "critical": RED, "red": RED, "gap": RED, "broken": RED, "failed": RED, "error": RED,
}


def worst(*colors: str) -> str:
    """The most alarming colour (grey = nothing to judge, never wins over a real state)."""
    return max(colors, key=lambda c: _RANK.get(c, 0), default=GREY)


def color_of(word: Any) -> str:
    """Colour for a status word from another component; unknown words are grey."""
    return _WORDS.get(str(word).lower(), GREY) if word is not None else GREY


def age_color(age_seconds: float | None, rpo_seconds: float, *, event_driven: bool = False) -> str:
    if age_seconds is None:
        return AMBER if event_driven else RED
    if event_driven:
        return GREEN
    if age_seconds > rpo_seconds:
        return RED
    return AMBER if age_seconds > AMBER_FRACTION * rpo_seconds else GREEN


def drill_color(drill: dict[str, Any] | None, rto_seconds: float, now: datetime) -> tuple[str, str]:
    """(colour, short reason) of the last restore drill."""
    if drill is None:
        return AMBER, "no restore drill on record"
    seconds = drill.get("restore_seconds")
    if drill.get("ok") is not True:
        return RED, "the last drill FAILED"
    if not isinstance(seconds, (int, float)):
        return AMBER, "the last drill recorded no restore time"
    if seconds > rto_seconds:
        return RED, "the last drill restored slower than the RTO"
    checked = drill.get("checked_at")
    if checked:
        try:
            when = datetime.fromisoformat(str(checked).replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and now - when > DRILL_STALE_AFTER:
            return AMBER, f"the last drill is older than {int(DRILL_STALE_AFTER / timedelta(hours=1))}h"
    if seconds > AMBER_FRACTION * rto_seconds:
        return AMBER, "the last drill used most of the RTO"
    return GREEN, "restored within the RTO"


def verification_color(state: str) -> tuple[str, str]:
    """Colour of a backup's copy checks (``CatalogEntry.verification_state()["state"]``, the
    same the CLI prints): every checked copy good, some bad, all bad, never checked."""
    return {"verified": (GREEN, "verified"), "mixed": (AMBER, "a copy failed"), "failed": (RED, "failed")}.get(
        state, (GREY, "unverified"))


# ----------------------------------------------------------------------------- secrets

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/\s:@]*):(?P<secret>[^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|secret_key|secret_access_key|aws_secret_access_key|token|access_token"
    r"|api_key|apikey|authorization)\b)(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"',;&}]+)",
    re.IGNORECASE,
)


def scrub_text(text: str) -> str:
    """Hide credentials inside a message: ``scheme://user:pw@`` and ``password=...`` forms."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}***", text)


def scrub(value: Any) -> Any:
    """Apply :func:`scrub_text` to every string of a JSON-like structure.

    Messages shown on the page come from other systems (store errors, drill problems,
    health findings); any of them could quote a connection URI, so the page data is
    scrubbed as a whole on its way out rather than trusting each producer.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value

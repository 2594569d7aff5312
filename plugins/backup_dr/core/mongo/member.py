"""One replica-set member for a whole dump (or oplog slice): chosen once, then a direct connection.

WHY: with a replica-set client every operation selects a server on its own. With two or more
secondaries and ``secondaryPreferred`` the start position, each collection scan and the
oplog window can each come from a different member; members apply the oplog at different
speeds, so the window read from one member may not cover what another member's scan saw,
and writes go missing without any error. So the member is chosen ONCE, by the read
preference, among the servers the driver has discovered (pymongo's own selection rules:
``TopologyDescription.apply_selector``, latency window included), and everything after that
goes over a ``directConnection`` to that member alone.

The direct client is built from the arguments the caller's client was built with (the URI
and keyword options, as pymongo keeps them for ``MongoClient._duplicate``): credentials,
``authSource`` (also the URI's ``/database`` default), TLS files and flags, timeouts, app
name, compressors and event listeners carry over; only what names the whole set
(``replicaSet``, read preference, SRV, load balancing) is dropped. A client that already talks
to one server (``directConnection=true``, a standalone, a load balancer) is used as it is.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from backup_dr.core.errors import BackupDRError, SourceError

log = logging.getLogger(__name__)

#: URI/keyword options that describe the set or how to pick among its members: meaningless (or
#: wrong) for a direct connection to the one member chosen.
_SET_OPTIONS = frozenset(o.lower() for o in (
    "replicaSet", "readPreference", "readPreferenceTags", "maxStalenessSeconds", "directConnection",
    "loadBalanced", "srvServiceName", "srvMaxHosts", "localThresholdMS", "server_selector", "host", "port",
))
_SINGLE = ("Single", "LoadBalanced")
#: How long to wait for the driver to learn the type of every seed/member before choosing.
_DISCOVERY_S = 5.0


@dataclass
class Member:
    """The member a job reads from: ``client`` talks to it alone; ``address`` is ``host:port``."""

    client: Any
    address: str
    state: str  # primary | secondary | standalone | mongos | unknown
    owned: bool  # a direct client made here (closed on exit) or the caller's own client


def _address_text(address) -> str:
    return f"{address[0]}:{address[1]}" if address else "unknown"


def _state(description) -> str:
    name = getattr(description, "server_type_name", "") or ""
    return {"RSPrimary": "primary", "RSSecondary": "secondary", "Standalone": "standalone",
            "Mongos": "mongos"}.get(name, name.lower() or "unknown")


def _choose(client, read_preference) -> Any:
    """The ServerDescription the read preference selects, once every member's type is known
    (bounded by the client's server selection timeout)."""
    timeout = float(getattr(client.options, "server_selection_timeout", 30) or 30)
    started = time.monotonic()
    candidates: list = []
    while True:
        desc = client.topology_description
        unknown = [s for s in desc.server_descriptions().values() if not s.is_server_type_known]
        candidates = desc.apply_selector(read_preference)
        waited = time.monotonic() - started
        if candidates and (not unknown or waited >= min(_DISCOVERY_S, timeout)):
            return random.choice(candidates)
        if waited >= timeout:
            seen = ", ".join(f"{_address_text(a)} ({s.server_type_name})" for a, s in desc.server_descriptions().items())
            raise SourceError(
                f"no MongoDB server matches read preference {read_preference.name!r}",
                detail=f"servers seen: {seen or 'none'}",
                hint="check that the replica set is up and the connection's hosts are right, or relax "
                     "sources.<name>.read_preference",
            )
        time.sleep(0.05)


def direct_options(client) -> dict[str, Any]:
    """Keyword options for a direct client to one member of ``client``'s deployment: everything
    the caller gave (URI and keywords) except what selects among members. See the module doc."""
    from pymongo import uri_parser

    init = dict(getattr(client, "_init_kwargs", None) or {})
    hosts = init.get("host")
    opts: dict[str, Any] = {}
    for host in hosts if isinstance(hosts, (list, tuple)) else [hosts]:
        if not isinstance(host, str) or "://" not in host:
            continue
        parsed = uri_parser.parse_uri(host, validate=True, warn=False)
        opts.update({k: v for k, v in parsed["options"].items()})
        if parsed.get("username") is not None:
            opts["username"] = parsed["username"]
            opts["password"] = parsed["password"]
        if parsed.get("database") and not any(k.lower() == "authsource" for k in opts):
            opts["authSource"] = parsed["database"]  # mongodb://u:p@h/db authenticates against db
    for key, value in init.items():
        if key not in ("host", "port"):
            opts[key] = value
    return {k: v for k, v in opts.items() if k.lower() not in _SET_OPTIONS}


@contextmanager
def pinned_member(client, read_preference, *, what: str = "the dump") -> Iterator[Member]:
    """Yield the one member ``what`` reads from (see the module doc); a direct client made here is
    closed on exit."""
    import pymongo

    if client.topology_description.topology_type_name in _SINGLE:
        address = client.address
        yield Member(client, _address_text(address), "single", owned=False)
        return
    chosen = _choose(client, read_preference)
    host, port = chosen.address
    try:
        direct = pymongo.MongoClient(host=host, port=port, directConnection=True, **direct_options(client))
    except (TypeError, ValueError, pymongo.errors.ConfigurationError) as e:
        raise BackupDRError(f"cannot open a direct connection to {host}:{port} with the connection's options",
                            detail=str(e), hint="report this with the connection's extra options (no secrets)") from e
    member = Member(direct, f"{host}:{port}", _state(chosen), owned=True)
    log.info("%s reads from ONE member: %s (%s, chosen by read preference %s)", what, member.address, member.state,
             read_preference.name)
    try:
        yield member
    finally:
        direct.close()

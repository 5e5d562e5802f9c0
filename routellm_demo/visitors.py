"""Who a visitor is, for the per-visitor limits and for duplicate votes: the client address, kept only
as a salted hash.

Why the address and not the session: a session is a random id the client gets anew with every page
load or script, so a limit per session bounds nothing a script cares about. The address is what the
app sees of the connection: the peer, or, when the peer is a configured trusted proxy (a Space's or a
reverse proxy's address), the nearest address in ``X-Forwarded-For`` that is not itself a trusted
proxy. A forwarded header from anyone else is ignored, since any client can write one.

The address never reaches the store: it is turned into an HMAC-SHA256 with a salt made once per store
(so every process and replica of one deployment computes the same key), and the hash is what the
limits and ``vote_visitors`` hold, for ``limits.visitor_retention_days``; it is never shown or
exported. Without an address (the library called directly, no request) the session is the key.

The shared limiter keeps its sliding windows in the store's ``rate_events`` table, so a visitor's
quota holds across sessions, processes and replicas of one store.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

from routellm_demo.config import parse_networks
from routellm_demo.limits import LimitError
from routellm_demo.store import StoreError

logger = logging.getLogger(__name__)

FORWARDED_HEADER = "x-forwarded-for"
# On a Hugging Face Space every request arrives through the platform's proxy, from inside its private
# network: with no trusted proxy configured, every visitor would be that one proxy address and share one
# quota. There (SPACE_ID is set) the private networks are the default trusted proxies.
PRIVATE_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


def trusted_proxies_for(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The configured trusted proxies; on a Space with none configured, the private networks."""
    env = os.environ if environ is None else environ
    return configured if configured.strip() or not env.get("SPACE_ID") else PRIVATE_NETWORKS


def _address(text: str | None):
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def _within(addr, networks) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple) -> str | None:
    """The visitor's address: ``peer``, unless ``peer`` is a trusted proxy and ``forwarded_for`` names
    addresses; then the right-most of those that is not a trusted proxy (each proxy appends the address
    it received from, so the left part is whatever the client wrote). None without a peer."""
    peer_addr = _address(peer)
    if peer_addr is None:
        return peer or None
    if not forwarded_for or not _within(peer_addr, trusted_proxies):
        return str(peer_addr)
    hops = [_address(h) for h in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop is None:
            break  # a garbled hop: stop believing the header here
        if not _within(hop, trusted_proxies):
            return str(hop)
    return str(peer_addr)


@dataclass(frozen=True)
class Visitor:
    """One visitor as the arena and the limits see them: ``key`` is the salted hash (of the address,
    else of the session); ``trusted`` names a trusted source (the address is a configured trusted voter)."""

    key: str
    trusted: str | None = None


class VisitorKeys:
    """Turns a request into a :class:`Visitor`; the address is hashed here and dropped."""

    def __init__(self, store, *, trusted_proxies: str = "", trusted_voters: str = ""):
        self._salt = store.visitor_salt().encode()
        self._proxies = parse_networks(trusted_proxies)
        self._voters = parse_networks(trusted_voters)

    @classmethod
    def from_config(cls, store, config) -> "VisitorKeys":
        return cls(store, trusted_proxies=trusted_proxies_for(config.trusted_proxies),
                   trusted_voters=config.trusted_voters)

    def hash(self, kind: str, value: str) -> str:
        return hmac.new(self._salt, f"{kind}:{value}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def visitor(self, peer: str | None, headers: Mapping[str, str] | None, session_id: str) -> Visitor:
        forwarded = None
        if headers is not None:
            forwarded = headers.get(FORWARDED_HEADER) or headers.get(FORWARDED_HEADER.title())
        address = client_address(peer, forwarded, self._proxies)
        if not address:
            return Visitor(self.hash("session", session_id))
        trusted = "load-test" if _within(_address(address), self._voters) else None
        return Visitor(self.hash("ip", address), trusted)

    def from_request(self, request, session_id: str) -> Visitor:
        """A Gradio request (``gr.Request``; None when called without one) -> the visitor."""
        client = getattr(request, "client", None)
        peer = getattr(client, "host", None)
        headers = getattr(request, "headers", None)
        return self.visitor(peer, headers, session_id)


class SharedLimiter:
    """At most ``max_events`` per visitor key in any ``window_s`` seconds, counted in the store (every
    process shares it). Refusals are :class:`LimitError` ("rate_limited"), nothing counted."""

    def __init__(self, store, max_events: int, window_s: float, *, kind: str, what: str,
                 clock: Callable[[], float] = time.time):
        if max_events < 1 or window_s <= 0:
            raise ValueError("max_events must be at least 1 and window_s positive")
        self.store, self.max_events, self.window_s = store, int(max_events), float(window_s)
        self.kind, self.what, self._clock = kind, what, clock
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            purge = now - self._last_purge >= self.window_s
            if purge:
                self._last_purge = now
        try:
            wait = self.store.hit_rate(key, self.kind, max_events=self.max_events, window_s=self.window_s, now=now,
                                       purge=purge)
        except StoreError as e:
            # Fail open: a store that cannot be written (locked, read-only) must not stop the chat; the
            # per-session limit (in memory) still holds, and the failure is logged (SECURITY.md).
            logger.warning("per-visitor %s limit not counted: %s", self.kind, e)
            return
        if wait is not None:
            window = "minute" if self.window_s == 60 else "hour" if self.window_s == 3600 else f"{self.window_s:g} s"
            raise LimitError("rate_limited", f"Too many {self.what}: at most {self.max_events} per {window} from one "
                             f"visitor. Try again in {max(1, math.ceil(wait))} s.", retry_after=wait)


def purge_visitors(store, retention_days: float, *, now: datetime | None = None) -> int:
    """Forget which visitor cast which vote once it is older than the retention period; returns how many."""
    now = now or datetime.now(timezone.utc)
    return store.purge_vote_visitors((now - timedelta(days=retention_days)).isoformat(timespec="milliseconds"))

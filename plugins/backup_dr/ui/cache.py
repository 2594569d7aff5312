"""A small time-limited cache for the catalog page.

Listing S3 and GCS under every class and source, and reading manifests and verification
records, takes seconds; a page view must not cost that each time, nor may ten people
opening the page during an incident trigger ten listings at once. One lock serialises the
rebuild: whoever comes second waits for the first build and reuses it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

DEFAULT_TTL_SECONDS = 45.0
#: A forced refresh (``?refresh=1``) is ignored when the data is younger than this.
MIN_REFRESH_SECONDS = 5.0


class TTLCache:
    def __init__(self, build: Callable[[], Any], *, ttl: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._build = build
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Any = None
        self._built_at: float | None = None
        self.builds = 0

    def get(self, *, refresh: bool = False) -> tuple[Any, float]:
        """(value, age in seconds). Rebuilds when expired, or on ``refresh`` unless very fresh."""
        with self._lock:
            now = self._clock()
            age = None if self._built_at is None else now - self._built_at
            stale = age is None or age >= self.ttl or (refresh and age >= MIN_REFRESH_SECONDS)
            if stale:
                self._value = self._build()
                self._built_at = self._clock()
                self.builds += 1
                age = 0.0
            return self._value, age

    def clear(self) -> None:
        with self._lock:
            self._value, self._built_at = None, None

"""An ASGI app that builds the real one on its first request.

Airflow imports every plugin file in every process that loads plugins: the API server,
but also the scheduler, the dag-processor, the triggerer and each task's runner (for
macros). Only the API server ever serves the catalog page, so building the FastAPI app
(FastAPI itself plus Airflow's API security module, over a second of imports) at plugin
import time would slow every task start for nothing. Airflow mounts any ASGI app given in
``fastapi_apps``; this one imports and builds the real app when the first request comes.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable


class LazyASGIApp:
    def __init__(self, factory: str):
        """:param factory: ``"package.module:function"`` returning the ASGI app."""
        module, _, func = factory.partition(":")
        if not module or not func:
            raise ValueError(f"factory must look like 'package.module:function', got {factory!r}")
        self.factory = factory
        self._module, self._func = module, func
        self._app: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Callable[..., Any]:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = getattr(importlib.import_module(self._module), self._func)()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<LazyASGIApp {self.factory} ({'built' if self._app is not None else 'not built yet'})>"

"""Stand-in for the Korea Public Data API container in the compose stack.

It owns the app files the backups protect (/app/config, /app/logs, /app/uploads) and serves
GET /health, which the DR scenarios' health-check step calls. Replace it with the real API.
"""

import json
import os
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APP = Path(os.environ.get("APP_DIR", "/app"))
for sub in ("config", "logs", "uploads"):
    (APP / sub).mkdir(parents=True, exist_ok=True)
cfg = APP / "config" / "app.yaml"
if not cfg.exists():
    cfg.write_text("api:\n  name: korea-public-data-api\n  rate_limit_per_minute: 600\n", encoding="utf-8")


class Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        ok = self.path.rstrip("/") == "/health"
        body = json.dumps({"status": "ok" if ok else "not found", "time": datetime.now(timezone.utc).isoformat()}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
        with open(APP / "logs" / "api.log", "a", encoding="utf-8") as log:
            log.write(f"{datetime.now(timezone.utc).isoformat()} GET {self.path} {200 if ok else 404}\n")


ThreadingHTTPServer(("0.0.0.0", 8000), Health).serve_forever()

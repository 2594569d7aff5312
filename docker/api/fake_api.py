"""Stand-in for the Korea Public Data API container in the compose stack.

It owns the app files the backups protect (/app/config, /app/logs, /app/uploads), serves
GET /health (the DR health-check step calls it) and accepts POST /admin/repoint (the DR
"repoint" step tells it where its data now lives). Replace it with the real API.
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


class App(BaseHTTPRequestHandler):
    def _log(self, status: int) -> None:
        with open(APP / "logs" / "api.log", "a", encoding="utf-8") as log:
            log.write(f"{datetime.now(timezone.utc).isoformat()} {self.command} {self.path} {status}\n")

    def do_GET(self):  # noqa: N802
        ok = self.path.rstrip("/") == "/health"
        body = json.dumps({"status": "ok" if ok else "not found", "time": datetime.now(timezone.utc).isoformat()}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
        self._log(200 if ok else 404)

    def do_POST(self):  # noqa: N802 - the DR "repoint" webhook: record where the data now lives
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/admin/repoint":
            self.send_response(404)
            self.end_headers()
            self._log(404)
            return
        (APP / "config" / "datasources.json").write_bytes(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"repointed": true}')
        self._log(200)


ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000"))), App).serve_forever()

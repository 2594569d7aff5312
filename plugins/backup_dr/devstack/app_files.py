"""A sample application directory like the API server's ``/app``: config, logs, uploads, repo."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

OLD_LOG_AGE_DAYS = 45


def make_app_dir(root: str | os.PathLike, *, seed: int = 11, git: bool = True) -> Path:
    """Create config/, logs/ (some older than 30 days), uploads/ and a git repo under ``root``."""
    rng = random.Random(seed)
    root = Path(root)
    (root / "config" / "nginx").mkdir(parents=True, exist_ok=True)
    (root / "config" / "app.yaml").write_text(
        "api:\n  name: korea-public-data-api\n  rate_limit_per_minute: 600\n  default_region: 서울특별시\n"
        "mongodb:\n  uri_env: MONGODB_URI\n  database: korea_public_data\nredis:\n  url_env: REDIS_URL\n",
        encoding="utf-8",
    )
    (root / "config" / "nginx" / "api.conf").write_text("server { listen 80; location / { proxy_pass http://api:8000; } }\n")
    (root / "config" / "schema.json").write_text('{"collections": ["announcements", "businesses", "contents", "statistics"]}\n')
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    now = time.time()
    for day in range(0, 60, 3):
        p = logs / f"api-{day:02d}.log"
        p.write_text("".join(f"2026-11-{(day % 28) + 1:02d}T00:00:{i % 60:02d}Z INFO GET /api/v1/announcements 200 {rng.randint(3, 90)}ms\n" for i in range(200)))
        os.utime(p, (now - day * 86400, now - day * 86400))
    (logs / "debug.trace").write_text("not a .log file: excluded by the include pattern\n")
    uploads = root / "uploads" / "2026" / "11"
    uploads.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        (uploads / f"공고문_{i}.pdf").write_bytes(rng.randbytes(rng.randint(2_000, 60_000)))
    if git:
        repo = root / "repo"
        repo.mkdir(exist_ok=True)
        env = {**os.environ, "GIT_AUTHOR_NAME": "deploy", "GIT_AUTHOR_EMAIL": "deploy@example", "GIT_COMMITTER_NAME": "deploy", "GIT_COMMITTER_EMAIL": "deploy@example"}
        run = lambda *a: subprocess.run(["git", *a], cwd=repo, env=env, check=True, capture_output=True)  # noqa: E731
        if not (repo / ".git").exists():
            run("init", "-q", "-b", "main")
        (repo / "app.py").write_text("print('korea public data api')\n")
        run("add", "-A")
        run("commit", "-q", "-m", "release 1.0.0", "--allow-empty")
        run("tag", "-f", "v1.0.0")
    return root

"""``python -m backup_dr``: the break-glass CLI (works with Airflow down)."""

from backup_dr.cli.main import main

raise SystemExit(main())

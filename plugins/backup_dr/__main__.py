"""``python -m backup_dr``: the break-glass CLI (works with Airflow down)."""

from backup_dr.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())

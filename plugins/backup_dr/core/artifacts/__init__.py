"""Backup artifacts: naming (layout), the manifest written last, and the local writer."""

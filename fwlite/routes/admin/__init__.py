"""Test-only administration of fwlite (not part of Flywheel's API)."""

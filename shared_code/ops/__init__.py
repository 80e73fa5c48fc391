"""Runbook operations for the platform team, shared by the admin endpoints and the CLI
(`python -m shared_code.ops`)."""

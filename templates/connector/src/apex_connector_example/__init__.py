"""Apex source connector for Example (template)."""

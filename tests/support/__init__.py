"""Helpers for the cross-package tests (end to end, contract, chaos)."""

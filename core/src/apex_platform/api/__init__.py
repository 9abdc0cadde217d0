"""The Litestar application: webhooks, push API, health, plugins, metrics, OpenAPI."""

from apex_platform.api.app import create_app

__all__ = ["create_app"]

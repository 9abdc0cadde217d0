"""Worker versioning: a worker announces a build id derived from what is installed.

The build id is `apex-` + the first 12 hex digits of the SHA-256 of the sorted
`distribution==version` lines of apex-platform and every loaded plugin: two workers with
the same connectors, sinks and enrichers at the same versions share it, and installing a
new connector version gives a new one (`APEX_WORKER_BUILD_ID` overrides it).

With `APEX_WORKER_VERSIONING=on` every worker polls as version
`<APEX_WORKER_DEPLOYMENT_NAME>.<build id>` of a Temporal Worker Deployment (Temporal's
worker versioning, server 1.28+ / Temporal Cloud). A new version gets no work until it is
made the deployment's current version or given a ramp (a percentage of workflows):

    temporal worker deployment set-ramping-version --deployment-name apex --build-id apex-… --percentage 10
    temporal worker deployment set-current-version --deployment-name apex --build-id apex-…

and going back is the same command with the old build id (its workers must still run).
Apex's workflows are `AUTO_UPGRADE` (their default behaviour here): drains, pollers and
reconcilers live for weeks, so they must move to the new version at their next task —
which is why every workflow change must replay the recorded histories
(`tests/test_replay.py`) — and the connector code itself runs in activities, which go to
the workers of the version their workflow is on. `APEX_WORKER_VERSIONING_BEHAVIOR=pinned`
keeps each run on the version it started on instead (until it continues as new).
With versioning off (the default) workers poll unversioned, as before; the build id is
still logged and shown, so an operator sees which workers run which plugin set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform import __version__
from apex_platform.settings import apex_config

if TYPE_CHECKING:
    from temporalio.worker import WorkerDeploymentConfig

    from apex_platform.plugins import PluginInfo, Registry

log = logging.getLogger(__name__)


class VersioningSettings(BaseSettings):
    """How a worker takes part in Temporal's worker versioning (`APEX_WORKER_*`)."""

    model_config = apex_config("APEX_WORKER_")

    versioning: bool = Field(default=False, description="Poll as a version of a Temporal Worker Deployment")
    deployment_name: str = Field(
        default="apex", pattern=r"^[A-Za-z0-9_-]{1,100}$", description="The Worker Deployment's name (no dot)"
    )
    build_id: str | None = Field(
        default=None, max_length=255, description="Override the build id derived from the installed plugins"
    )
    versioning_behavior: Literal["auto_upgrade", "pinned"] = Field(
        default="auto_upgrade", description="How a running workflow follows a new current version"
    )

    @field_validator("versioning", mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("on", "off"):
            return value.strip().lower() == "on"
        return value


def installed(plugins: Iterable[PluginInfo]) -> list[str]:
    """`distribution==version` of apex-platform and each loaded plugin's distribution, sorted."""
    lines = {f"apex-platform=={_platform_version()}"}
    for plugin in plugins:
        if plugin.error is None and plugin.distribution:
            lines.add(f"{plugin.distribution.lower()}=={plugin.version or '?'}")
    return sorted(lines)


def _platform_version() -> str:
    try:
        return metadata.version("apex-platform")
    except metadata.PackageNotFoundError:  # run from a source tree
        return __version__


def build_id(plugins: Iterable[PluginInfo], settings: VersioningSettings | None = None) -> str:
    chosen = (settings or VersioningSettings()).build_id
    if chosen:
        return chosen
    digest = hashlib.sha256("\n".join(installed(plugins)).encode()).hexdigest()
    return f"apex-{digest[:12]}"


def deployment_config(registry: Registry, settings: VersioningSettings | None = None) -> WorkerDeploymentConfig:
    """The `Worker(deployment_config=...)` of this process: versioned or not, always
    carrying the build id (Temporal shows it for every poller)."""
    from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
    from temporalio.worker import WorkerDeploymentConfig

    s = settings or VersioningSettings()
    version = WorkerDeploymentVersion(deployment_name=s.deployment_name, build_id=build_id(registry.plugins, s))
    behavior = VersioningBehavior.PINNED if s.versioning_behavior == "pinned" else VersioningBehavior.AUTO_UPGRADE
    log.info(
        "worker build id %s (%s)%s",
        version.build_id,
        ", ".join(installed(registry.plugins)),
        f"; versioned as {version.to_canonical_string()}, {s.versioning_behavior}" if s.versioning else "",
    )
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=s.versioning,
        default_versioning_behavior=behavior if s.versioning else VersioningBehavior.UNSPECIFIED,
    )

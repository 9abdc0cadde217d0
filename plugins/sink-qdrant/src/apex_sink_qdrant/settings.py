"""Settings of the Qdrant sink (`APEX_QDRANT_*`) and where its store is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError
from apex_platform.settings import Credential, apex_config, core_settings

#: Largest dense vector Qdrant accepts.
MAX_VECTOR_DIM = 65535

Distance = Literal["Cosine", "Dot", "Euclid"]


class QdrantSinkSettings(BaseSettings):
    """Where and how the sink stores points. Every field reads `APEX_QDRANT_<FIELD>`."""

    model_config = apex_config("APEX_QDRANT_")

    url: str | None = Field(
        default=None, description="Qdrant server, e.g. https://qdrant.internal:6333; unset: local mode on `path`"
    )
    api_key: Credential | None = Field(default=None, description="API key of the Qdrant server")
    path: Path | None = Field(
        default=None,
        description="Folder of the embedded local mode; unset: the embedded stack's folder from APEX_HOME/stack.json",
    )
    collection: str = Field(
        default="apex_records",
        pattern=r"^[A-Za-z0-9_-]{1,255}$",
        description="Collection holding one point per record",
    )
    embedding_dim: int = Field(
        default=384,
        ge=1,
        le=MAX_VECTOR_DIM,
        description="Size of the `text` vector; checked against an existing collection at open()",
    )
    distance: Distance = Field(
        default="Cosine", description="Distance of the `text` vector; checked against an existing collection at open()"
    )
    timeout: int = Field(default=10, ge=1, description="Seconds a request to a Qdrant server may take")
    health_timeout: float = Field(default=2.0, gt=0, description="Seconds health() waits for an answer")
    local_synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="Local mode's SQLite durability: 'normal' (WAL; survives a process crash, a power cut can lose "
        "the last writes; about 10x faster) or 'full' (qdrant-client's default: one fsync per point)",
    )


@dataclass(frozen=True)
class Location:
    """Either a server URL or a local folder, and where that choice came from."""

    url: str | None = None
    path: Path | None = None
    from_stack: bool = False

    def describe(self) -> str:
        if self.url is not None:
            return f"Qdrant server {self.url}"
        origin = " (from the embedded stack's stack.json)" if self.from_stack else ""
        return f"local Qdrant folder {self.path}{origin}"


def stack_file() -> Path:
    """The embedded stack's state file, `<APEX_HOME>/stack.json`."""
    return core_settings().home / "stack.json"


def resolve_location(settings: QdrantSinkSettings) -> Location:
    """APEX_QDRANT_URL, else APEX_QDRANT_PATH, else the running embedded stack's folder."""
    if settings.url is not None and settings.path is not None:
        raise SettingsError(
            "the qdrant sink has both APEX_QDRANT_URL and APEX_QDRANT_PATH set: "
            "keep APEX_QDRANT_URL for a Qdrant server or APEX_QDRANT_PATH for local mode, not both"
        )
    if settings.url is not None:
        if not settings.url.strip():
            raise SettingsError("APEX_QDRANT_URL is empty: set it to the server's URL or unset it")
        return Location(url=settings.url.strip())
    if settings.path is not None:
        return Location(path=settings.path.expanduser())

    from apex_platform.stack import read_stack

    home = core_settings().home
    info = read_stack(home)
    path = None
    if info is not None:
        qdrant = info.get("qdrant")
        path = qdrant.get("path") if isinstance(qdrant, dict) else None
    if not isinstance(path, str) or not path:
        raise SettingsError(
            "the qdrant sink has no store: set APEX_QDRANT_URL (a Qdrant server, e.g. http://localhost:6333) "
            "or APEX_QDRANT_PATH (a folder for local mode), or start `apex-platform dev` "
            f"(no running embedded stack found at {stack_file()})"
        )
    return Location(path=Path(path), from_stack=True)

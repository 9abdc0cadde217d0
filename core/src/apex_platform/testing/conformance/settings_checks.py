"""Checks of a plugin's `settings_model` shared by the conformance suites: every setting
documented, and secrets never shown."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic_settings import BaseSettings

_CANARY = "apex-conformance-canary-"
_SECRET_WORDS = {
    "secret",
    "secrets",
    "token",
    "tokens",
    "password",
    "passwd",
    "key",
    "keys",
    "credential",
    "credentials",
}


def fail(message: str) -> typing.NoReturn:
    pytest.fail(message, pytrace=False)


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The fields of `model` whose type holds a SecretStr / SecretBytes (in a union, Annotated…)."""

    def holds(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes):
            return True
        return any(holds(arg) for arg in typing.get_args(annotation))

    def marked(extra: Any) -> bool:  # json_schema_extra={"secret": True}, as `plugins settings` reads it
        return isinstance(extra, dict) and extra.get("secret") is True

    return [
        name for name, info in model.model_fields.items() if holds(info.annotation) or marked(info.json_schema_extra)
    ]


def secret_variables(model: type[BaseSettings] | None) -> set[str]:
    """The environment variables of `model`'s secret settings."""
    if model is None:
        return set()
    prefix = str(model.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in secret_fields(model)}


def _plain_secret_like(model: type[BaseModel]) -> list[str]:
    """Fields typed `str` whose name says they hold a secret (a token, a password, a key)."""
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        plain = annotation is str or (
            typing.get_origin(annotation) in (typing.Union, types.UnionType) and str in typing.get_args(annotation)
        )
        if plain and name.lower().split("_")[-1] in _SECRET_WORDS:
            out.append(name)
    return out


def check_documented(model: type[BaseSettings] | None) -> None:
    """Every setting has a description; nothing that looks like a secret is a plain str."""
    if model is None:
        return
    bare = [name for name, info in model.model_fields.items() if not (info.description or "").strip()]
    if bare:
        fail(
            f"{model.__name__}: settings without a description: {', '.join(bare)}. "
            'Give each one Field(..., description="what it does, its unit, what unset means"): '
            "`apex-platform plugins settings` and the README's table show it"
        )
    plain = _plain_secret_like(model)
    if plain:
        fail(
            f"{model.__name__}: {', '.join(plain)} look like secrets but are plain str. Type them "
            "SecretStr (apex_platform.settings.Secrets or Credential) so no repr, log or dump shows them"
        )


def check_secrets_hidden(
    model: type[BaseSettings] | None,
    environment: Mapping[str, str],
    make: Callable[[], object],
    what: str,
) -> None:
    """With every secret setting set (the samples' value, else a canary), none shows in the
    repr, str or JSON dump of the settings, nor in the repr or str of a fresh plugin object
    made by `make` (whose lazily loaded `settings`, if any, is loaded first)."""
    if model is None:
        return
    prefix = str(model.model_config.get("env_prefix", ""))
    values: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as patch:
        for name in secret_fields(model):
            variable = f"{prefix}{name}".upper()
            value = environment.get(variable) or f"{_CANARY}{name}-0123456789abcdef"
            values[variable] = value
            patch.setenv(variable, value)
        try:
            settings = model()
        except ValidationError:
            # a canary the model refuses (a format it checks): keep the samples' values only
            for variable in values:
                if variable not in environment:
                    patch.delenv(variable)
            values = {k: v for k, v in values.items() if k in environment}
            settings = model()
        plugin = make()
        loaded = getattr(plugin, "settings", None)  # first-party plugins load their settings lazily
        shown = {
            f"repr({model.__name__}(...))": repr(settings),
            f"str({model.__name__}(...))": str(settings),
            f"{model.__name__}(...).model_dump_json()": settings.model_dump_json(),
            f"repr({what})": repr(plugin),
            f"str({what})": str(plugin),
        }
        if isinstance(loaded, BaseModel):
            shown[f"repr({what}.settings)"] = repr(loaded)
    for variable, value in values.items():
        for where, text in shown.items():
            if value in text:
                fail(
                    f"the secret {variable} shows in {where}. Keep secrets in SecretStr settings "
                    "and leave them out of __repr__ / __str__ (the repr reaches logs and error reports)"
                )

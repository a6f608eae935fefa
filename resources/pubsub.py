"""Where and how ``<scenario>/pubsub_publish`` publishes: topic, payload format, batching, flow
control, rate caps, pacing, retries.

A settings holder (like `resources.export.ExportResource`) whose fields are made from the fields
of `PublishSettings` (same names, types, defaults and descriptions): `PubSubResource.from_env`
reads each from ``CIRCUS_PUBSUB_<FIELD>`` when that variable is set, and
`PublishSettings.validated` checks them before anything is sent, so a bad value fails the run at
once, naming the variable.  No credential is ever a setting: the client library finds them itself
(Application Default Credentials), or uses none when ``PUBSUB_EMULATOR_HOST`` points at an
emulator, so nothing secret can reach the run's logs or metadata.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from resources.pubsub_settings import (
    PER_RUN,
    TYPES,
    PublishConfigError,
    PublishSettings,
    env_name,
    from_environ,
    parse_setting,
)

__all__ = ["PubSubResource", "run_config_fields"]


def _doc(setting: str) -> str:
    return PublishSettings.__dataclass_fields__[setting].metadata["doc"]


def run_config_fields() -> dict[str, Any]:
    """The run configuration's overrides of the settings `PublishSettings` marks ``per_run``, as
    `pydantic.create_model` field definitions: each optional, unset (None) by default, when the
    resource's setting applies."""
    return {
        name: (TYPES[name] | None, Field(default=None, description=f"{_doc(name)}; unset: {env_name(name)}"))
        for name in PER_RUN
    }


#: the fields of `PubSubResource`: one per setting, as `PublishSettings` declares it
_PubSubSettings: Any = create_model(
    "_PubSubSettings",
    __base__=dg.ConfigurableResource,
    **{f.name: (TYPES[f.name], Field(default=f.default, description=_doc(f.name))) for f in fields(PublishSettings)},
)


class PubSubResource(_PubSubSettings):
    """Pub/Sub publishing settings: one field per setting of
    `resources.pubsub_settings.PublishSettings` (see there for each)."""

    #: ``CIRCUS_PUBSUB_*`` variables that did not parse when the code location loaded (setting ->
    #: raw text): reported by `settings`, so that only publishing fails, not every asset's loading
    invalid_env: dict[str, str] = Field(
        default_factory=dict, description="CIRCUS_PUBSUB_* values that did not parse (publishing fails naming them)"
    )

    @classmethod
    def from_env(cls) -> PubSubResource:
        """The resource configured by the ``CIRCUS_PUBSUB_<FIELD>`` variables that are set: strings
        and integers as ``dg.EnvVar`` (shown as such in the UI), floats and booleans parsed here.  A
        value that does not parse is not an error here: raising would fail the import of the whole
        code location (every scenario's assets gone for one publishing typo); it goes to
        ``invalid_env`` and fails the publish runs only, naming the variable and the value
        (`resources.pubsub_settings.parse_setting`)."""
        values, invalid = from_environ(os.environ)
        config: dict[str, Any] = {}
        for name, value in values.items():
            var = _env_var(name)
            config[name] = value if var is None else var
        if invalid:
            config["invalid_env"] = invalid
        return cls(**config)

    def settings(self, **overrides: Any) -> PublishSettings:
        """The validated settings (``overrides`` from the run configuration win, None: not
        overridden), or a `dg.Failure`."""
        values = {name: getattr(self, name) for name in TYPES}
        values.update({name: value for name, value in overrides.items() if value is not None})
        try:
            for setting, raw in sorted(self.invalid_env.items()):
                parse_setting(setting, raw)  # raises, naming the variable and its value
            return PublishSettings(**values).validated()
        except PublishConfigError as exc:
            text = str(exc)
            for name, value in overrides.items():  # a value from the run config is named as such
                if value is not None and text.startswith(f"Pub/Sub setting {name}: "):
                    text = text.replace(f"{env_name(name)} = ", "run config (pubsub_publish config) = ", 1)
            raise dg.Failure(description=text, allow_retries=False) from exc


def _env_var(setting: str) -> dg.EnvVar | None:
    """``dg.EnvVar`` of a string or integer setting's variable (Dagster has none for the others)."""
    kind = TYPES[setting]
    if kind is str:
        return dg.EnvVar(env_name(setting))
    return dg.EnvVar.int(env_name(setting)) if kind is int else None

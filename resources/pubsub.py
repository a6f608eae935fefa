"""Where and how ``<scenario>/pubsub_publish`` publishes: topic, payload format, batching, flow
control, rate caps, pacing, retries.

A settings holder (like `resources.export.ExportResource`): every field is read from
``CIRCUS_PUBSUB_<FIELD>`` by ``pipelines/definitions.py`` when that variable is set, and checked
by `PublishSettings.validated` before anything is sent, so a bad value fails the run at once,
naming the variable.  No credential is ever a setting: the client library finds them itself
(Application Default Credentials), or uses none when ``PUBSUB_EMULATOR_HOST`` points at an
emulator, so nothing secret can reach the run's logs or metadata.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import dagster as dg
from pydantic import Field

from resources.pubsub_settings import PublishConfigError, PublishSettings, parse_setting

__all__ = ["PubSubResource"]

_DEFAULTS = PublishSettings()


class PubSubResource(dg.ConfigurableResource):
    """Pub/Sub publishing settings (see `resources.pubsub_settings.PublishSettings` for each)."""

    project: str = _DEFAULTS.project
    topic: str = _DEFAULTS.topic
    format: str = _DEFAULTS.format
    client: str = _DEFAULTS.client
    ordering: bool = _DEFAULTS.ordering
    batch_max_messages: int = _DEFAULTS.batch_max_messages
    batch_max_bytes: int = _DEFAULTS.batch_max_bytes
    batch_max_latency_ms: int = _DEFAULTS.batch_max_latency_ms
    flow_max_messages: int = _DEFAULTS.flow_max_messages
    flow_max_bytes: int = _DEFAULTS.flow_max_bytes
    max_messages_per_second: float = _DEFAULTS.max_messages_per_second
    max_bytes_per_second: float = _DEFAULTS.max_bytes_per_second
    pacing_speed: float = _DEFAULTS.pacing_speed
    checkpoint_every: int = _DEFAULTS.checkpoint_every
    retry_deadline_s: float = _DEFAULTS.retry_deadline_s
    request_timeout_s: float = _DEFAULTS.request_timeout_s
    create_topic: bool = _DEFAULTS.create_topic
    #: ``CIRCUS_PUBSUB_*`` variables that did not parse when the code location loaded (setting ->
    #: raw text): reported by `settings`, so that only publishing fails, not every asset's loading
    invalid_env: dict[str, str] = Field(
        default_factory=dict, description="CIRCUS_PUBSUB_* values that did not parse (publishing fails naming them)"
    )

    def settings(self, **overrides: Any) -> PublishSettings:
        """The validated settings (``overrides`` from the run configuration win), or a `dg.Failure`."""
        values = {f.name: getattr(self, f.name) for f in fields(PublishSettings)}
        values.update(overrides)
        try:
            for setting, raw in sorted(self.invalid_env.items()):
                parse_setting(setting, raw)  # raises, naming the variable and its value
            return PublishSettings(**values).validated()
        except PublishConfigError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

"""Publisher settings, validated once before anything is sent or written.

Every setting is declared once, as a field of `PublishSettings`, and has an environment variable
(``CIRCUS_PUBSUB_<NAME>``, read by `from_environ` when the code location loads); a bad value fails
the run at once with an error naming the variable and the value, before the topic is contacted or
a progress file touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, get_type_hints

from circus_core import CircusError

__all__ = [
    "CLIENTS",
    "FORMATS",
    "PER_RUN",
    "TYPES",
    "PublishConfigError",
    "PublishSettings",
    "env_name",
    "from_environ",
    "parse_setting",
]

#: payload formats: name -> content type (sent as the ``content_type`` attribute)
FORMATS = {"json": "application/json", "avro": "application/avro"}

#: "rpc": our batches sent with the generated ``Publish`` RPC (fast: one call per batch);
#: "client": the client library's per-message ``PublisherClient.publish()`` (futures, its own batching)
CLIENTS = ("rpc", "client")

_TOPIC_PATH = re.compile(r"^projects/(?P<project>[^/]+)/topics/(?P<topic>[^/]+)$")
_TOPIC_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$")


class PublishConfigError(CircusError):
    """A publisher setting is missing or has a bad value."""


def env_name(setting: str) -> str:
    """A setting's environment variable: ``pacing_speed`` -> ``CIRCUS_PUBSUB_PACING_SPEED``."""
    return f"CIRCUS_PUBSUB_{setting.upper()}"


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def parse_setting(setting: str, raw: str) -> str | int | float | bool:
    """The value of setting ``setting`` read from the text ``raw`` of its environment variable,
    or a `PublishConfigError` naming the variable and the value.

    The code location reads the variables when it loads but reports what does not parse only
    through this, when a publish run asks for the settings: one bad variable must not take every
    scenario's assets down with it.
    """
    if setting not in TYPES:
        raise PublishConfigError(f"unknown Pub/Sub setting {setting!r}; known: {sorted(TYPES)}")
    kind, text = TYPES[setting], raw.strip()

    def bad(why: str) -> PublishConfigError:
        return PublishConfigError(f"Pub/Sub setting {setting}: {env_name(setting)} = {raw!r}: {why}")

    if kind is str:
        return raw
    if kind is bool:
        if text.lower() not in _TRUE + _FALSE:
            raise bad("expected 1/0, true/false or yes/no")
        return text.lower() in _TRUE
    try:
        return int(text) if kind is int else float(text)
    except ValueError:
        raise bad("expected an integer" if kind is int else "expected a number") from None


def from_environ(environ: Mapping[str, str]) -> tuple[dict[str, str | int | float | bool], dict[str, str]]:
    """The settings whose ``CIRCUS_PUBSUB_<SETTING>`` is set (and not empty) in ``environ``, parsed,
    and those whose text does not parse (setting -> text, for `parse_setting` to report when a
    publish run asks for the settings)."""
    values: dict[str, str | int | float | bool] = {}
    invalid: dict[str, str] = {}
    for setting in TYPES:
        raw = environ.get(env_name(setting))
        if not raw:
            continue
        try:
            values[setting] = parse_setting(setting, raw)
        except PublishConfigError:
            invalid[setting] = raw
    return values, invalid


def _setting(default: Any, doc: str, *, per_run: bool = False) -> Any:
    """A field of `PublishSettings`: its default, what it means (the description of the resource
    field, of the run configuration's override and of the docs) and whether the run configuration
    of ``pubsub_publish`` may override it (``per_run``)."""
    return field(default=default, metadata={"doc": doc, "per_run": per_run})


@dataclass(frozen=True)
class PublishSettings:
    """Where and how to publish.  Rates of 0 mean "no limit"; ``pacing_speed`` 0 means "as fast as allowed".

    The one declaration of the settings: the fields of `resources.pubsub.PubSubResource`, the
    overrides of the run configuration (``per_run``) and the ``CIRCUS_PUBSUB_<SETTING>`` variables
    (`from_environ`) are made from these fields, with these types, defaults and descriptions.
    """

    project: str = _setting("", "GCP project of the topic (not needed when the topic is projects/P/topics/T)")
    topic: str = _setting("", "topic id, or projects/<project>/topics/<topic>")
    format: str = _setting("json", "payload format: json or avro")
    client: str = _setting(
        "rpc", "rpc: our batches sent with the Publish RPC (fast); client: the library's per-message publish()"
    )
    ordering: bool = _setting(
        False, "ordering key = the log's member column: each member's messages arrive in order (one request in flight)"
    )
    batch_max_messages: int = _setting(1000, "at most this many messages per publish request (<= 1000)")
    batch_max_bytes: int = _setting(1_000_000, "at most this many bytes per publish request (<= 10 MB)")
    batch_max_latency_ms: int = _setting(10, "longest wait (ms) to fill a batch")
    flow_max_messages: int = _setting(3000, "flow control: at most this many messages sent but not yet acknowledged")
    flow_max_bytes: int = _setting(30_000_000, "flow control: at most this many bytes sent but not yet acknowledged")
    max_messages_per_second: float = _setting(0.0, "cap on messages/s (0 = none)", per_run=True)
    max_bytes_per_second: float = _setting(0.0, "cap on bytes/s (0 = none)", per_run=True)
    pacing_speed: float = _setting(
        0.0,
        "replay in event time at this speed (1 = real time, 60 = an hour per minute, 0 = off)",
        per_run=True,
    )
    checkpoint_every: int = _setting(10_000, "save the acknowledged positions every this many acknowledged messages")
    retry_deadline_s: float = _setting(
        120.0, "transient errors are retried with exponential backoff until this many seconds have passed"
    )
    request_timeout_s: float = _setting(60.0, "timeout (s) of one request")
    create_topic: bool = _setting(
        False, "create the topic when it does not exist (emulators and demos; production topics are provisioned)"
    )

    @property
    def topic_path(self) -> str:
        if self.topic.startswith("projects/"):
            return self.topic
        return f"projects/{self.project}/topics/{self.topic}"

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    def with_overrides(self, **overrides: object) -> PublishSettings:
        """These settings with some replaced (run configuration over resource settings), validated."""
        return replace(self, **overrides).validated()

    def validated(self) -> PublishSettings:
        """The settings normalised, or a `PublishConfigError` naming the variable and value at fault."""

        def bad(setting: str, why: str) -> PublishConfigError:
            value = getattr(self, setting)
            return PublishConfigError(f"Pub/Sub setting {setting}: {env_name(setting)} = {value!r}: {why}")

        if not self.topic:
            raise bad("topic", "publishing needs a topic: set CIRCUS_PUBSUB_TOPIC (a topic id or projects/P/topics/T)")
        match = _TOPIC_PATH.match(self.topic)
        project, topic = (match["project"], match["topic"]) if match else (self.project, self.topic)
        if match is None and "/" in self.topic:
            raise bad("topic", "expected a topic id or projects/<project>/topics/<topic>")
        if not project:
            raise bad("project", "a topic id needs a project: set CIRCUS_PUBSUB_PROJECT or give projects/P/topics/T")
        if not _PROJECT_ID.match(project):
            raise bad("project" if match is None else "topic", f"{project!r} is not a valid project id")
        if not _TOPIC_ID.match(topic) or topic.lower().startswith("goog"):
            raise bad("topic", f"{topic!r} is not a valid topic id")
        fmt = self.format.strip().lower()
        if fmt not in FORMATS:
            raise bad("format", f"expected one of {sorted(FORMATS)}")
        client = self.client.strip().lower()
        if client not in CLIENTS:
            raise bad("client", f"expected one of {list(CLIENTS)}")
        for name, low in (
            ("batch_max_messages", 1),
            ("batch_max_bytes", 1),
            ("batch_max_latency_ms", 0),
            ("flow_max_messages", 1),
            ("flow_max_bytes", 1),
            ("checkpoint_every", 1),
        ):
            if getattr(self, name) < low:
                raise bad(name, f"must be at least {low}")
        if self.batch_max_messages > 1000:
            raise bad("batch_max_messages", "Pub/Sub accepts at most 1000 messages per publish request")
        if self.batch_max_bytes > 10_000_000:
            raise bad("batch_max_bytes", "Pub/Sub accepts at most 10 MB per publish request")
        for name in ("max_messages_per_second", "max_bytes_per_second", "pacing_speed"):
            if not getattr(self, name) >= 0:  # also rejects NaN
                raise bad(name, "must be >= 0 (0 = off)")
        for name in ("retry_deadline_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0 seconds")
        return replace(self, project=project, topic=topic, format=fmt, client=client)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


#: each setting's type (str, int, float or bool), in declaration order
TYPES: dict[str, type] = get_type_hints(PublishSettings)
#: the settings the run configuration of ``pubsub_publish`` may override
PER_RUN: tuple[str, ...] = tuple(f.name for f in fields(PublishSettings) if f.metadata["per_run"])

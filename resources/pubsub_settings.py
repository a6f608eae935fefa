"""Publisher settings, validated once before anything is sent or written.

Every setting has an environment variable (``CIRCUS_PUBSUB_<NAME>``, read by
``pipelines/definitions.py``); a bad value fails the run at once with an error naming the
variable and the value, before the topic is contacted or a progress file touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from circus_core import CircusError

__all__ = ["CLIENTS", "FORMATS", "PublishConfigError", "PublishSettings", "env_name", "parse_setting"]

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
    types = {f.name: f.type for f in fields(PublishSettings)}
    if setting not in types:
        raise PublishConfigError(f"unknown Pub/Sub setting {setting!r}; known: {sorted(types)}")
    kind, text = types[setting], raw.strip()

    def bad(why: str) -> PublishConfigError:
        return PublishConfigError(f"Pub/Sub setting {setting}: {env_name(setting)} = {raw!r}: {why}")

    if kind == "str":
        return raw
    if kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise bad("expected 1/0, true/false or yes/no")
        return text.lower() in _TRUE
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise bad("expected an integer" if kind == "int" else "expected a number") from None


@dataclass(frozen=True)
class PublishSettings:
    """Where and how to publish.  Rates of 0 mean "no limit"; ``pacing_speed`` 0 means "as fast as allowed"."""

    project: str = ""
    topic: str = ""
    format: str = "json"
    client: str = "rpc"
    #: ordering key = the log's member column (``Scenario.member_field``); messages of one member arrive in order
    ordering: bool = False
    batch_max_messages: int = 1000
    batch_max_bytes: int = 1_000_000
    batch_max_latency_ms: int = 10
    #: publish flow control: messages / bytes sent but not yet acknowledged by the service
    flow_max_messages: int = 3000
    flow_max_bytes: int = 30_000_000
    max_messages_per_second: float = 0.0
    max_bytes_per_second: float = 0.0
    #: replay speed in event time (1 = real time, 60 = a simulated hour per minute); 0 = off
    pacing_speed: float = 0.0
    #: save the acknowledged positions after every this many acknowledged messages
    checkpoint_every: int = 10_000
    #: transient errors are retried with exponential backoff until this many seconds have passed
    retry_deadline_s: float = 120.0
    request_timeout_s: float = 60.0
    #: create the topic when it does not exist (for emulators and demos; production topics are provisioned)
    create_topic: bool = False

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

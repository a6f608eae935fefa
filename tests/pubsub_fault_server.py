"""A local gRPC server speaking ``google.pubsub.v1.Publisher`` with scripted faults.

It decodes and encodes with the client library's own message types (``PublishRequest``,
``PublishResponse``, ``Topic`` from ``google.pubsub_v1.types``), so the publisher under test
talks to it exactly as to Pub/Sub, through ``PUBSUB_EMULATOR_HOST``.  A *script* decides, call
by call, whether ``Publish`` succeeds or fails with a status code; every accepted message is
kept (in order), so a test can count what was delivered and how often.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from google.pubsub_v1.types import pubsub as types

__all__ = ["FaultServer", "fault_server"]


@dataclass
class FaultServer:
    """State of the fake service: scripted outcomes and what it accepted."""

    #: outcome of the n-th Publish call (0-based): None = accept, else the status code to fail with
    publish_script: Callable[[int], grpc.StatusCode | None] = lambda n: None
    #: GetTopic outcome: None = the topic exists, else the status code to fail with
    get_topic_status: grpc.StatusCode | None = None
    publish_calls: int = 0
    get_topic_calls: int = 0
    accepted: list[types.PubsubMessage] = field(default_factory=list)
    #: ``time.monotonic()`` at which each accepted message arrived
    arrivals: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_topic(self, request: types.GetTopicRequest, context: grpc.ServicerContext) -> types.Topic:
        with self.lock:
            self.get_topic_calls += 1
        if self.get_topic_status is not None:
            context.abort(self.get_topic_status, f"scripted {self.get_topic_status.name} for {request.topic}")
        return types.Topic(name=request.topic)

    def publish(self, request: types.PublishRequest, context: grpc.ServicerContext) -> types.PublishResponse:
        with self.lock:
            n = self.publish_calls
            self.publish_calls += 1
        status = self.publish_script(n)
        if status is not None:
            context.abort(status, f"scripted {status.name} on publish call {n} to {request.topic}")
        with self.lock:
            first = len(self.accepted)
            self.accepted.extend(request.messages)
            self.arrivals.extend([time.monotonic()] * len(request.messages))
        return types.PublishResponse(message_ids=[str(first + i) for i in range(len(request.messages))])


@contextmanager
def fault_server(state: FaultServer) -> Iterator[str]:
    """Serve ``state`` on a free loopback port (port 0, read back); ``PUBSUB_EMULATOR_HOST`` points at it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "GetTopic": grpc.unary_unary_rpc_method_handler(
            state.get_topic,
            request_deserializer=types.GetTopicRequest.deserialize,
            response_serializer=types.Topic.serialize,
        ),
        "Publish": grpc.unary_unary_rpc_method_handler(
            state.publish,
            request_deserializer=types.PublishRequest.deserialize,
            response_serializer=types.PublishResponse.serialize,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
            yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)

"""Publishing simulated days to Pub/Sub: ``<scenario>/pubsub_publish`` and the code behind it.

    messages.py   a day's log rows in publish order, their event ids, JSON / Avro payloads
    throttle.py   token bucket (messages/s and bytes/s) and event-time pacing
    progress.py   acknowledged positions per log, checkpointed to the storage resource
    publisher.py  the publishing loop: batches, in-flight window, retries, fault classification
    asset.py      the Dagster asset

Settings live in ``resources/pubsub_settings.py`` (shared with the resource).  Only ``asset.py``
imports Dagster, so the publisher runs the same from a benchmark or a script.
"""

__all__: list[str] = []

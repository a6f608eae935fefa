"""Where a circus meets files: checkpoints, the database of populations and relationships,
and log writing.

- `circus_core.io.checkpoint`: `Circus.save` / `Circus.load` (a folder per checkpoint, written
  atomically, versioned by `FORMAT_VERSION`);
- `circus_core.io.db`: `DB`, a folder of populations, relationships and generators shared
  between circuses (trumania's DB, seed example 4);
- `circus_core.io.logs`: Parquet, CSV and JSON-lines (optionally gzipped) log files in a hive
  layout (``logs/<log_id>/date=D/part-NNNNN.<ext>``), written step by step (`DayWriter`), every
  format's bytes from one function (`write_log`);
- `circus_core.io.json_rows`: the exact JSON rendering of log rows (Pub/Sub messages, JSON lines).
"""

from circus_core.io.checkpoint import FORMAT_VERSION
from circus_core.io.db import DB
from circus_core.io.logs import FORMATS, MEDIA_TYPES, DayWriter, LogWriter, write_day, write_jsonl, write_log

__all__ = [
    "DB",
    "FORMATS",
    "FORMAT_VERSION",
    "MEDIA_TYPES",
    "DayWriter",
    "LogWriter",
    "write_day",
    "write_jsonl",
    "write_log",
]

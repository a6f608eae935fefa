"""Reading user tables (DataFrame, Parquet or CSV) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from circus_core.errors import CircusError

__all__ = ["read_table"]


def read_table(table: Any, where: str) -> pd.DataFrame:
    """``table`` as a DataFrame: a DataFrame, an Arrow table, or a ``.parquet``/``.csv`` path."""
    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, pa.Table):
        return table.to_pandas()
    if isinstance(table, str | Path):
        path = Path(table)
        if not path.exists():
            raise CircusError(f"{where}: file {str(path)!r} does not exist")
        try:
            if path.suffix == ".parquet" or path.is_dir():
                return pd.read_parquet(path)
            if path.suffix == ".csv":
                return pd.read_csv(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise CircusError(f"{where}: cannot read {str(path)!r}: {exc}") from exc
        raise CircusError(f"{where}: {str(path)!r} is neither .parquet nor .csv")
    raise CircusError(f"{where}: expected a DataFrame or a file path, got {type(table).__name__}")

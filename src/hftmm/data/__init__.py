"""Market-data files: the Parquet event store, conversion of raw captures and
public-data CSVs into it, and verification of captures (``hftmm data ...``)."""
from hftmm.data.store import (SCHEMA, EventWriter, available_dates, available_symbols, read_events, read_metadata,
                              store_files)

__all__ = ["EventWriter", "SCHEMA", "available_dates", "available_symbols", "read_events", "read_metadata",
           "store_files"]

"""Storage: the Delta table of events, snapshot files, projection tables and atomic files.
Every Delta Lake detail lives here; the layers above speak of batches, seq ranges and files."""

"""Stage 1, ingest: readers, public-dataset sources, synthetic data, splits and filters."""

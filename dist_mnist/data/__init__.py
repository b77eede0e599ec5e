"""MNIST data: IDX parsing, download with checksums, and Parquet ingest."""

"""Data: MNIST's IDX files to Parquet, and how a Parquet split is described, sharded and read. No Spark here.

idx.py       IDX parsing and checks
mnist.py     the four MNIST files, their checksums and mirrors
download.py  `dist-mnist download`: fetch and verify
ingest.py    `dist-mnist ingest`: verified IDX files -> DATA/{train,test}/part-*.parquet + metadata.json
parquet.py   our Parquet layout: label + image (bytes) or features (floats); row-range reads
features.py  FeatureKind: `image` or `features`, the one word in Parquet and model.json
splits.py    a split's files and row counts, from the footers only (SplitFiles)
shards.py    which rows each of W workers holds: contiguous row ranges over the files
"""

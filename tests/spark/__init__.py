"""Tests against a local[2] SparkSession (marker: spark)."""

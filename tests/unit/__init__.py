"""Fast tests: pure NumPy/pyarrow, no JVM."""

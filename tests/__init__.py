"""dist-mnist tests: unit/ (no JVM), spark/ (local[2]), cluster/ (standalone on loopback)."""

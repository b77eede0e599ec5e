"""The Spark edge: sessions, executor-resident shards, the driver's round loop, evaluation."""

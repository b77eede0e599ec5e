"""dist-mnist: DL4J's MNIST MLP, trained data-parallel on Apache Spark with NumPy."""

__version__ = "0.1.0"

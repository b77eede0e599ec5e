"""Pure NumPy neural-network math: the MLP and the DL4J updaters. No Spark here."""

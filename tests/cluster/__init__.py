"""Tests against a real Spark standalone cluster on loopback."""

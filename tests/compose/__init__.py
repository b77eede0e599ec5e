"""Integration tests against the docker-compose mini-cluster (host networking)."""

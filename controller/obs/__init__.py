"""Observability: JSON logs, Prometheus metrics, health and metrics HTTP server."""

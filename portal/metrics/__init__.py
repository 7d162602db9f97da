"""Prometheus metrics of the portal, read from the database on each scrape (docs/configuration.md#metrics)."""

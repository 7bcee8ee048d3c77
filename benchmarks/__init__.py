"""Benchmarks of geo_service, run by ``make bench`` (``python -m benchmarks [section ...]``)."""

"""Batch work beyond one machine: reports as GeoParquet, re-location and roll-ups on Dask.

A district's year fits one PostGIS and one Locator; a province (10^5-10^6 grids, 10^8-10^9
reports) does not. ``export`` streams stored reports into hive-partitioned GeoParquet,
``relocate`` locates every point on a dask.distributed cluster with the project's Locator
(sharded by district, so a worker holds only the shards its partitions touch), and ``rollup``
counts reports per area or H3 cell and period the way the service's heat roll-up does.
"""

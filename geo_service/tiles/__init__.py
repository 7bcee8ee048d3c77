"""Vector tiles: layers drawn by PostGIS ``ST_AsMVT``, cached per worker by layer generation.

=====================  ========================================================
``address``            z/x/y checked at the edge, tile bounds
``layers``             each layer's contract (parameters, zooms, fields)
``query``              the query string, normalised into a cache-key part
``generations``        layer_generations counters, read at most every poll_s
``cache``              LRU of tile bytes with ETags, one build per missing key
``features``           analysis results ready for tiles, cached per generation
``render``             the per-layer choice of statements (``store.tiles`` holds them)
``prepared``           tile-ready copies of a version's areas (tile_areas)
``service``            the per-process service the routes call
``response``           status and caching headers of a tile answer
``fastpath``           ASGI middleware answering cache hits before routing
``tilejson``           TileJSON 3.0.0 documents
=====================  ========================================================
"""

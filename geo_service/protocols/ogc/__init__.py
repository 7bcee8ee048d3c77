"""OGC API - Features (Part 1: Core) over the boundary versions and the reports.

=====================  ========================================================
``collections``        the collections offered and what each holds
``params``             items query parameters (bbox, datetime, limit, offset, f)
``areas``              area features (districts … grids) of the version in force
``reports``            report features: the Open311 public view, never personal data
``documents``          landing page, conformance, collection and item documents
=====================  ========================================================
"""

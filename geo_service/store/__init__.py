"""Data access, one module per aggregate, each owning its SQL (MapIt's managers, tipg's
collections): ``versions`` (boundary versions and their areas), ``reports``, ``units``,
``keys``, ``rollups``, ``tiles``. Domain modules and routes call these functions; they never
write ``text()``.
"""

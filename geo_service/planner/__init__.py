"""The planner's workbench (``/planner``): versions on a timeline, a MapLibre editor whose every
edit goes through the draft API, live validation and impact, renumber, publish and roll back."""

"""The demo's synthetic year of reports: its model, places, Chinese texts and generator."""

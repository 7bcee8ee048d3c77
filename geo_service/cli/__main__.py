"""``python -m geo_service.cli``: the same app as the ``geo-service`` entry point, so the CLI
runs from a checkout without installing its script."""

from geo_service.cli import app

app(prog_name="geo-service")

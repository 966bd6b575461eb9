"""``python -m massalia`` runs the command-line interface."""

from massalia.cli import app

app()

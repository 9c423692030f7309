"""Placeholder: the `run` command is registered here."""

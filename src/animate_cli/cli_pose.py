"""Placeholder: the `pose` command is registered here."""

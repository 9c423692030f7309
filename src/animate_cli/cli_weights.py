"""Placeholder: the `weights` command is registered here."""

"""Progress reporting as a tiny protocol, so stage modules never touch rich.

A stage announces itself with `stage(name, total)` and then calls `advance(name)`. The CLI
renders these as rich bars on stderr; tests use `RecordingReporter` to check what happened.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, total: int | None, description: str = "") -> None: ...

    def advance(self, name: str, n: int = 1) -> None: ...

    def log(self, message: str) -> None: ...


class NullReporter:
    def stage(self, name: str, total: int | None, description: str = "") -> None:
        pass

    def advance(self, name: str, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass


class RecordingReporter:
    """Keeps every event; `counts[name]` is how far a stage advanced."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.counts: dict[str, int] = {}
        self.messages: list[str] = []

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self.events.append(("stage", name, total, description))
        self.counts[name] = 0

    def advance(self, name: str, n: int = 1) -> None:
        self.events.append(("advance", name, n))
        self.counts[name] = self.counts.get(name, 0) + n

    def log(self, message: str) -> None:
        self.messages.append(message)

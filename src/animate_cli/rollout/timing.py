"""Wall-clock laps for the per-stage timings of a run (`RunSummary.timings_s`).

    laps = Laps(sync)          # sync: torch.cuda.synchronize on CUDA, so a lap holds its GPU work
    ...read frames...; laps.mark("frame_reads")
    ...encode...;      laps.mark("vae_encode")

`mark(name)` adds the time since the previous mark (or since creation) to `name`. Without the sync,
CUDA's asynchronous launches would move a stage's GPU time into whichever later stage waits first.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Laps:
    def __init__(self, sync: Callable[[], None] | None = None):
        self.sync = sync
        self.s: dict[str, float] = {}
        self._t = time.monotonic()

    def mark(self, name: str) -> None:
        if self.sync is not None:
            self.sync()
        now = time.monotonic()
        self.s[name] = self.s.get(name, 0.0) + now - self._t
        self._t = now

    def move(self, src: str, dst: str, seconds: float) -> None:
        """Re-book `seconds` of lap `src` as `dst` (e.g. the part of the decode lap spent waiting on the writer)."""
        self.s[src] = self.s.get(src, 0.0) - seconds
        self.s[dst] = self.s.get(dst, 0.0) + seconds

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.s.items()}

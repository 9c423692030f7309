"""The weights manifest: which commit of each Hub repo the files under the weights root came from.

`download-weights` resolves each repo's revision (`main`, a tag, or `--revision OWNER/NAME=SHA`) to a
commit sha once, records it here *before* fetching anything, and downloads every file of that repo
at that commit. A resumed download reads the commit from here and never asks the Hub again, so it
cannot mix files of two commits even if `main` moved in between; only `--update` (or a different
`--revision`) re-resolves, and then every file of that repo recorded at another commit is fetched
anew. `run` and `download-weights --check` read it to report what is installed.

File: `<weights root>/everanimate-weights.json`, written atomically (temp file + rename):

    {"schema": "everanimate.weights-manifest/1",
     "repos": {"<registry key>": {"repo": "Wan-AI/...", "revision": "main", "commit": "<40 hex>",
                                  "resolved_at": "2026-...Z",
                                  "files": {"<dest under root>": {"path": "<path in repo>", "size": N, "commit": "<sha>"}}}}}

Files present without a record (copied by hand, or downloaded before pinning existed) are kept and
reported as "commit unknown"; `--update` replaces them too. Pure JSON, no Hub import.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

MANIFEST = "everanimate-weights.json"
SCHEMA = "everanimate.weights-manifest/1"


def path_of(root: Path) -> Path:
    return Path(root) / MANIFEST


def read(root: Path) -> dict:
    """The manifest under root; an empty one when there is none. An unreadable one counts as empty
    (everything in it is then "commit unknown", and the next download re-pins)."""
    try:
        data = json.loads(path_of(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"schema": SCHEMA, "repos": {}}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("repos"), dict):
        return {"schema": SCHEMA, "repos": {}}
    return data


def write(root: Path, manifest: dict) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path_of(root).with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path_of(root))


def pin(manifest: dict, key: str, repo_id: str, revision: str, commit: str) -> dict:
    """Record `key` at `commit`; file records of any other commit are dropped (those files are stale)."""
    old = manifest["repos"].get(key, {})
    files = {d: r for d, r in old.get("files", {}).items() if r.get("commit") == commit}
    manifest["repos"][key] = {"repo": repo_id, "revision": revision, "commit": commit, "files": files,
                              "resolved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    return manifest["repos"][key]


def record_file(manifest: dict, key: str, dest: str, path: str, size: int) -> None:
    entry = manifest["repos"][key]
    entry["files"][dest] = {"path": path, "size": size, "commit": entry["commit"]}


def file_commit(manifest: dict, key: str, dest: str) -> str | None:
    return manifest["repos"].get(key, {}).get("files", {}).get(dest, {}).get("commit")


def installed(root: Path) -> list[dict]:
    """[{repo, revision, commit, files}] for every pinned repo, for `run` and `--check` to report."""
    out = []
    for key, e in sorted(read(root)["repos"].items()):
        present = sum(1 for d in e.get("files", {}) if (Path(root) / d).exists())  # a file, or a folder model
        out.append({"key": key, "repo": e.get("repo"), "revision": e.get("revision"), "commit": e.get("commit"),
                    "files": present, "resolved_at": e.get("resolved_at")})  # fmt: skip
    return out


def short(entries: list[dict]) -> str:
    """'Wan-AI/Wan2.2-Animate-14B@1a2b3c4, ...', or what to say when nothing is pinned."""
    if not entries:
        return "not pinned (no manifest: not fetched by download-weights, commits unknown)"
    return ", ".join(f"{e['repo']}@{(e['commit'] or '?')[:7]}" for e in entries)

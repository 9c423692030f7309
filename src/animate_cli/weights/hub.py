"""Hub access: the injectable fetcher (tests pass a fake) and the mapping of Hub and network errors to
one-line errors. huggingface_hub is imported only here, inside functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from animate_cli.errors import (
    DiskSpaceError,
    EverAnimateError,
    HubError,
)


# --- Hub access (injectable: tests pass a fake; nothing else in the package talks to the Hub) ----
class Fetcher(Protocol):
    def commit(self, repo_id: str, revision: str) -> str:
        """The commit sha `revision` (branch, tag or sha) points at now."""

    def sizes(self, repo_id: str, revision: str, paths: list[str]) -> dict[str, int]:
        """Sizes of those `paths` that exist in the repo at `revision` (absent ones are left out)."""

    def listing(self, repo_id: str, revision: str, prefix: str) -> dict[str, int]:
        """Every file under `prefix` with its size."""

    def download(self, repo_id: str, path: str, revision: str, local_dir: Path) -> Path:
        """Fetch one file to local_dir/path (resuming a partial one); returns that path."""


class HubFetcher:
    """The real thing: huggingface_hub in local-dir mode (plain files, resumable `.incomplete` parts)."""

    def __init__(self, progress: bool = True):
        self.progress = progress

    def commit(self, repo_id: str, revision: str) -> str:
        from huggingface_hub import HfApi

        return HfApi().repo_info(repo_id, revision=revision).sha

    def sizes(self, repo_id: str, revision: str, paths: list[str]) -> dict[str, int]:
        from huggingface_hub import HfApi

        infos = HfApi().get_paths_info(repo_id, paths, revision=revision)
        return {i.path: i.size for i in infos if getattr(i, "size", None) is not None}

    def listing(self, repo_id: str, revision: str, prefix: str) -> dict[str, int]:
        from huggingface_hub import HfApi

        tree = HfApi().list_repo_tree(repo_id, path_in_repo=prefix.rstrip("/"), recursive=True, revision=revision)
        return {i.path: i.size for i in tree if getattr(i, "size", None) is not None}

    def download(self, repo_id: str, path: str, revision: str, local_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (enable_progress_bars if self.progress else disable_progress_bars)()
        return Path(hf_hub_download(repo_id, path, revision=revision, local_dir=local_dir))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub sees it (read at its import) or as it is set now."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(constants.HF_HUB_OFFLINE) or env


def offline_error(what: str) -> HubError:
    return HubError(
        f"cannot download {what}: the Hugging Face Hub is disabled (HF_HUB_OFFLINE=1)",
        hint="unset HF_HUB_OFFLINE and run again, or put complete weights in --dir / $EVERANIMATE_WEIGHTS_DIR",
    )


def hub_error(exc: BaseException, repo_id: str, revision: str, path: str = "") -> EverAnimateError | None:
    """One-line error for a huggingface_hub / network failure; None if `exc` is something else."""
    from huggingface_hub import errors as E

    where, what = f"{repo_id}@{revision}", f"{path} from " if path else ""
    resume = "run the same command again: finished files are kept and partial downloads resume"
    if isinstance(exc, E.GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return HubError(
            f"{repo_id} is gated: accept its conditions at https://huggingface.co/{repo_id}",
            hint="then log in with `hf auth login` (or set HF_TOKEN) and run the command again",
        )
    if isinstance(exc, E.RevisionNotFoundError):
        return HubError(
            f"revision {revision!r} not found in {repo_id}", hint="pass a branch, tag or full commit sha to --revision"
        )
    if isinstance(exc, E.RepositoryNotFoundError):
        return HubError(
            f"repository {repo_id} not found (renamed, private, or not visible without logging in)",
            hint="log in with `hf auth login` if it is private; if it moved, the id in animate_cli/weights/registry.py needs updating",
        )
    if isinstance(exc, E.OfflineModeIsEnabled):
        return offline_error(f"{what}{where}")
    if isinstance(exc, E.LocalEntryNotFoundError):  # what hf_hub_download raises when the Hub is unreachable
        return HubError(
            f"cannot reach the Hugging Face Hub to fetch {what}{where}",
            hint=f"check the network or proxy (HF_ENDPOINT); {resume}",
        )
    if isinstance(exc, E.EntryNotFoundError):
        return HubError(
            f"{path or 'a file'} not found in {where} (renamed or removed upstream?)",
            hint="the registry in animate_cli/weights/registry.py needs updating, or pass an older --revision",
        )
    if isinstance(exc, E.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError(
                f"the Hub refused access to {where} (HTTP {status})",
                hint="log in with `hf auth login` (or set HF_TOKEN) and accept the repo's conditions on its page",
            )
        if status == 404:
            return HubError(
                f"{what}{where} not found on the Hub (HTTP 404)",
                hint="the registry in animate_cli/weights/registry.py needs updating",
            )
        first = (str(exc).splitlines() or [""])[0]
        return HubError(f"the Hub answered HTTP {status} for {what}{where}: {first}"[:300], hint=resume)
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, ConnectionError | TimeoutError) or names & {
        "TransportError",
        "RequestError",
        "TimeoutException",
        "NetworkError",
    }:
        return HubError(f"cannot reach the Hugging Face Hub ({type(exc).__name__})", hint=f"check the network or proxy; {resume}")
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return DiskSpaceError(f"disk full while writing {what or 'weights'}", hint=f"free some space; {resume}")
    return None

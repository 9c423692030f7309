"""The `download-weights` engine: plan what is missing, check the disk, fetch (resumable, pinned to a
commit), convert or unpack, verify, and record the manifest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from animate_cli.errors import (
    DiskSpaceError,
    EverAnimateError,
    HubError,
    UsageError,
    WeightsBusyError,
    WeightsInvalidError,
    WeightsMissingError,
)
from animate_cli.media import locks
from animate_cli.media.files import free_bytes
from animate_cli.progress import NullReporter, Reporter
from animate_cli.weights.hub import Fetcher, HubFetcher, hub_error, hub_offline, offline_error
from animate_cli.weights.installed import file_ok, list_names, nonempty, problem_onnx, problems, size_on_disk
from animate_cli.weights.onnx_check import onnx_problem
from animate_cli.weights.registry import (
    DEFAULT_PARTS,
    EXAMPLE_FILES,
    EXAMPLES_PREFIX,
    GB,
    ORIG_SHARDS,
    PARTS,
    REPOS,
    STAGING_DIR,
    TRANSFORMER_SHARD,
    Item,
    registry_items,
)

Converter = Callable[[Path, Path], object]  # (original shard, diffusers shard to write); what it returns is ignored


# --- download -------------------------------------------------------------------------------------
@dataclass
class FileStatus:
    item: Item
    repo_id: str
    revision: str
    size: int
    present: bool
    exact: bool  # size from the Hub (True) or the registry's estimate (False)
    commit: str | None = None  # the pinned commit it is (to be) fetched at; None when not resolved (offline)
    stale: bool = False  # present, but from another commit than the pinned one: fetched anew
    members: dict[str, int] | None = None  # a "folder" item: its files and sizes at that commit, from the Hub

    def to_dict(self) -> dict:
        return {
            "path": self.item.dest,
            "repo": self.repo_id,
            "file": self.item.path,
            "revision": self.revision,
            "commit": self.commit,
            "stale": self.stale,
            "size": self.size,
            "size_exact": self.exact,
            "present": self.present,
            "part": self.item.part,
        }


@dataclass
class DownloadReport:
    root: Path
    dry_run: bool
    files: list[FileStatus] = field(default_factory=list)
    download_bytes: int = 0  # sum of the sizes of files still to fetch
    needed_bytes: int = 0  # free space needed: download_bytes + the largest staged file (zip / original shard)
    free_bytes: int = 0
    sizes_from_hub: bool = False
    fetched: list[str] = field(default_factory=list)
    complete: bool = False  # after the run: the structural check passed for everything requested
    examples_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    installed: list[dict] = field(default_factory=list)  # [{repo, revision, commit}] this run pinned or kept

    @property
    def pending(self) -> list[FileStatus]:
        return [f for f in self.files if not f.present]

    def to_dict(self) -> dict:
        return {
            "dir": str(self.root),
            "dry_run": self.dry_run,
            "files": [f.to_dict() for f in self.files],
            "to_download": len(self.pending),
            "download_bytes": self.download_bytes,
            "needed_bytes": self.needed_bytes,
            "free_bytes": self.free_bytes,
            "sizes_from_hub": self.sizes_from_hub,
            "fetched": self.fetched,
            "complete": self.complete,
            "examples_dir": str(self.examples_dir) if self.examples_dir else None,
            "notes": self.notes,
            "pinned": self.installed,
        }


def parse_revisions(values: Iterable[str], repo_keys: Iterable[str]) -> dict[str, str]:
    """--revision values -> {repo key: revision}. `OWNER/NAME=REV` names a repo; a bare `REV` is only
    accepted when the selection touches exactly one repo (e.g. `--only lora`)."""
    keys = list(dict.fromkeys(repo_keys))
    by_id = {REPOS[k].repo_id: k for k in keys}
    out: dict[str, str] = {}
    for v in values:
        repo_id, sep, rev = v.rpartition("=")
        if not sep:
            if len(keys) != 1:
                raise UsageError(
                    f"--revision {v} is ambiguous: this selection uses {', '.join(by_id)}",
                    hint="write --revision OWNER/NAME=REV, or narrow the selection with --only",
                )
            out[keys[0]] = v
        elif repo_id in by_id and rev:
            out[by_id[repo_id]] = rev
        else:
            raise UsageError(f"--revision {v}: {repo_id or '?'} is not one of {', '.join(by_id)}")
    return out


def format_bytes(n: int) -> str:
    for unit, scale in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if n >= 0.1 * scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _example_items(fetch: Fetcher, revision: str, online: bool) -> tuple[list[Item], bool]:
    if online:
        listing = fetch.listing(REPOS["everanimate"].repo_id, revision, EXAMPLES_PREFIX)
        files = {p: s for p, s in listing.items() if p.startswith(EXAMPLES_PREFIX)}
        if files:
            return [
                Item(p.removeprefix(EXAMPLES_PREFIX), "everanimate", p, s, "examples") for p, s in sorted(files.items())
            ], True
    return [Item(rel, "everanimate", EXAMPLES_PREFIX + rel, 0, "examples", approx=True) for rel in EXAMPLE_FILES], False


@dataclass(frozen=True)
class DownloadRequest:
    """What `download-weights` fetches, where, and how."""

    weights_dir: Path
    only: Iterable[str] = DEFAULT_PARTS  # registry parts
    resolution: str = "480p"  # the LoRA files: 480p, 720p or all
    revision: dict[str, str] | None = None  # registry repo key -> revision (parse_revisions)
    dry_run: bool = False  # plan and size only: nothing is written, no lock is taken
    examples_dir: Path | None = None  # also fetch the demo inputs there
    wait: bool = False  # while another download holds the folder's lock: wait for it (else WeightsBusyError)
    update: bool = False  # resolve every revision anew and fetch the files of any other commit


@dataclass
class _Job:
    """One download's state, passed from step to step."""

    request: DownloadRequest
    root: Path
    parts: tuple[str, ...]
    reporter: Reporter
    fetch: Fetcher
    convert: Converter | None
    manifest: dict
    online: bool
    revs: dict[str, str]  # repo key -> the revision asked: --revision, else the manifest's, else the registry's
    report: DownloadReport
    commits: dict[str, str | None] = field(default_factory=dict)  # repo key -> the commit pinned (None: not pinned)


def download(request: DownloadRequest, reporter: Reporter | None = None, fetch: Fetcher | None = None,
             convert: Converter | None = None) -> DownloadReport:  # fmt: skip
    """Fetch what `request.only` needs into `request.weights_dir`, resuming, and verify the result structurally.

    Already-complete files are never fetched again (no network at all if nothing is missing).
    Each repo's revision is resolved to a commit once and pinned in the manifest (weights_manifest.py); a
    resumed download keeps that commit, `update` re-resolves it and re-fetches files of any other commit.
    `fetch` (the Hub by default) and `convert` (weights/convert.py by default) exist for tests.
    Holds the lock of the weights folder (locks.py) unless `dry_run`: while another download holds it,
    raise WeightsBusyError (exit 4), or with `wait` say so and wait for it (then fetch what is still missing).
    """
    root = Path(request.weights_dir).expanduser()
    if request.dry_run or (root.exists() and not root.is_dir()):  # reads only / refused below with a usage error
        return _download(request, reporter, fetch, convert)

    def busy(who: str) -> WeightsBusyError:
        return WeightsBusyError(
            f"{root} is being written by another download-weights ({who})",
            hint="wait for it to finish, or pass --wait to wait for it and then fetch what is still missing",
        )

    with locks.hold(root, busy, wait=request.wait, log=(reporter or NullReporter()).log):
        return _download(request, reporter, fetch, convert)


def _download(request: DownloadRequest, reporter: Reporter | None, fetch: Fetcher | None,
              convert: Converter | None) -> DownloadReport:  # fmt: skip
    job = _start(request, reporter or NullReporter(), fetch, convert)
    _pin(job)
    report = job.report
    pending_repos = {f.item.repo for f in report.pending}  # the examples are sized by their own listing
    if request.examples_dir is not None:
        _add_examples(job)
    if not job.online and report.pending:
        if not request.dry_run:
            raise offline_error(_fmt_missing(report))
        report.notes.append("the Hub is not reachable or disabled (HF_HUB_OFFLINE=1): sizes are the registry's estimates")
    if stale := [f for f in report.files if f.stale]:
        report.notes.append(f"{len(stale)} files are from another commit than the one pinned now and will be fetched anew")
    if job.online and report.pending:  # exact sizes, and early 404 / gated / auth errors before anything is written
        for key in sorted(pending_repos):
            _size_repo(job, key)
        report.sizes_from_hub = all(f.exact for f in report.pending if f.item.part != "examples")
    staged = [f.size for f in report.pending if f.item.how in ("unzip", "convert")]
    report.download_bytes = sum(f.size for f in report.pending)
    report.needed_bytes = report.download_bytes + max(staged, default=0)
    report.free_bytes = free_bytes(job.root)
    report.installed = [{"repo": REPOS[k].repo_id, "revision": job.revs[k], "commit": c} for k, c in job.commits.items()]
    if request.dry_run:
        report.complete = not report.pending
        return report
    if report.needed_bytes > report.free_bytes:
        raise DiskSpaceError(
            f"not enough disk space in {job.root}: {format_bytes(report.needed_bytes)} needed, {format_bytes(report.free_bytes)} free",
            hint="free some space or pass --dir (or set EVERANIMATE_WEIGHTS_DIR) on a larger disk",
        )
    _fetch_pending(job)
    _verify(job)
    report.complete = True
    return report


def _start(request: DownloadRequest, reporter: Reporter, fetch: Fetcher | None,
           convert: Converter | None) -> _Job:  # fmt: skip
    """The request checked, the manifest read, and every registry file it needs with its status on disk."""
    from animate_cli.weights import manifest as M

    root = Path(request.weights_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--dir {root} is a file, not a folder")
    only = request.only
    parts = tuple(p for p in PARTS if p in set(only))
    if unknown := set(only) - set(PARTS):
        raise UsageError(f"unknown --only {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    fetch = fetch or HubFetcher()
    manifest = M.read(root)
    pinned = manifest["repos"]
    online = not hub_offline()
    if request.update and not online and not request.dry_run:
        raise offline_error("newer commits (--update)")
    asked = request.revision or {}
    revs = {k: asked.get(k) or pinned.get(k, {}).get("revision") or r.revision for k, r in REPOS.items()}
    report = DownloadReport(root=root, dry_run=request.dry_run, examples_dir=request.examples_dir)
    for it in registry_items(parts, request.resolution):
        report.files.append(
            FileStatus(it, REPOS[it.repo].repo_id, revs[it.repo], it.size, file_ok(root / it.dest), not it.approx)
        )
    return _Job(request, root, parts, reporter, fetch, convert, manifest, online, revs, report)


def _pin(job: _Job) -> None:
    """Pin each repo to one commit: the manifest's (no network), or resolved once now when there is something
    to fetch from it and no pin yet, when --update asks, or when --revision changes it. A file of another
    commit (or of an unknown one, with --update) is fetched anew, and so is a pose file changed since."""
    from animate_cli.weights import manifest as M

    request, report, manifest = job.request, job.report, job.manifest
    pinned, asked, examples = manifest["repos"], request.revision or {}, request.examples_dir is not None
    keys = list(dict.fromkeys([f.item.repo for f in report.files] + (["everanimate"] if examples else [])))
    for key in keys:
        entry = pinned.get(key)
        changed = key in asked and entry is not None and asked[key] not in (entry.get("revision"), entry.get("commit"))
        has_pending = any(not f.present for f in report.files if f.item.repo == key) or (key == "everanimate" and examples)
        if entry and entry.get("commit") and not (request.update or changed):
            job.commits[key] = entry["commit"]
        elif job.online and (has_pending or request.update or changed):
            job.commits[key] = _guard(lambda k=key: job.fetch.commit(REPOS[k].repo_id, job.revs[k]), key, job.revs)
        else:
            job.commits[key] = None  # offline, or a legacy folder that needs nothing: not pinned
    for f in report.files:
        f.commit = job.commits.get(f.item.repo)
        size_then = manifest["repos"].get(f.item.repo, {}).get("files", {}).get(f.item.dest, {}).get("size")
        if f.present and f.item.part == "pose" and size_then is not None and size_on_disk(job.root / f.item.dest) != size_then:
            f.present = False  # changed since it was downloaded (as problems() reports): fetched anew
        recorded = M.file_commit(manifest, f.item.repo, f.item.dest)
        if f.present and f.commit and (recorded not in (None, f.commit) or (recorded is None and request.update)):
            f.present, f.stale = False, True  # from another commit (or unknown, with --update): fetch anew
    if not request.dry_run:
        for key, commit in job.commits.items():
            if commit and pinned.get(key, {}).get("commit") != commit:
                M.pin(manifest, key, REPOS[key].repo_id, job.revs[key], commit)
        if any(job.commits.values()):
            M.write(job.root, manifest)  # before fetching: an interrupted download resumes at these commits


def _add_examples(job: _Job) -> None:
    """The demo inputs, listed on the Hub (the registry's names and no sizes when it cannot be reached: a dry
    run then goes on offline)."""
    examples_dir, revs = job.request.examples_dir, job.revs
    ex_rev = job.commits.get("everanimate") or revs["everanimate"]
    try:
        ex_items, exact = _guard(lambda: _example_items(job.fetch, ex_rev, job.online), "everanimate", revs)
    except HubError:
        if not job.request.dry_run:
            raise
        (ex_items, exact), job.online = _example_items(job.fetch, ex_rev, False), False
    for it in ex_items:
        status = FileStatus(it, REPOS["everanimate"].repo_id, revs["everanimate"], it.size,
                            nonempty(examples_dir / it.dest), exact, commit=job.commits.get("everanimate"))  # fmt: skip
        job.report.files.append(status)


def _size_repo(job: _Job, key: str) -> None:
    """The Hub's sizes of one repo's pending files (a folder's: the sum of its files, listed at the same
    commit); HubError when one of them is not there. A dry run notes a failed listing and keeps the estimates."""
    fetch, revs = job.fetch, job.revs
    pending = [f for f in job.report.pending if f.item.repo == key and f.item.part != "examples"]
    paths = [f.item.path for f in pending if f.item.how != "folder"]
    at = job.commits.get(key) or revs[key]
    try:
        sizes = _guard(lambda: fetch.sizes(REPOS[key].repo_id, at, paths), key, revs)
        for f in pending:
            if f.item.how == "folder":
                f.members = _guard(lambda it=f.item: fetch.listing(REPOS[key].repo_id, at, it.path + "/"), key, revs)
                if f.members:
                    sizes[f.item.path] = sum(f.members.values())
        paths += [f.item.path for f in pending if f.item.how == "folder"]
    except HubError:
        if not job.request.dry_run:
            raise
        job.report.notes.append(f"could not list {REPOS[key].repo_id} on the Hub: sizes are estimates")
        return
    if lost := [p for p in paths if p not in sizes]:
        pin_note = f" (commit {at[:12]})" if job.commits.get(key) else ""
        raise HubError(
            f"{len(lost)} files not found in {REPOS[key].repo_id}@{revs[key]}{pin_note}: {list_names(lost, 3)}",
            hint="renamed upstream? the registry in animate_cli/weights/registry.py needs updating, or pass an older --revision",
        )
    for f in job.report.pending:
        if f.item.repo == key and f.item.part != "examples":
            f.size, f.exact = sizes[f.item.path], True


def _fetch_pending(job: _Job) -> None:
    """Every pending file, one by one, each recorded in the manifest as soon as it is in place."""
    from animate_cli.weights import manifest as M

    report, root, reporter, examples_dir = job.report, job.root, job.reporter, job.request.examples_dir
    pending = report.pending
    reporter.stage(
        "download",
        total=len(pending),
        description=f"download-weights ({len(pending)} files, {format_bytes(report.download_bytes)})",
    )
    for f in pending:
        reporter.log(f"fetching {f.item.path} from {f.repo_id}@{(f.commit or f.revision)[:12]} ({format_bytes(f.size)})")
        _guard(lambda f=f: _fetch_one(f, root, examples_dir, job.fetch, job.convert), f.item.repo, job.revs, f.item.path)
        report.fetched.append(f.item.dest)
        f.present = True
        if f.item.part != "examples" and f.commit:
            M.record_file(job.manifest, f.item.repo, f.item.dest, f.item.path, size_on_disk(root / f.item.dest))
            M.write(root, job.manifest)
        reporter.advance("download")
    _tidy(root / STAGING_DIR)
    if examples_dir is not None:
        _tidy(examples_dir / ".everanimate-download")


def _verify(job: _Job) -> None:
    """WeightsMissingError when a requested file is still missing or incomplete after the download."""
    root, parts, resolution = job.root, job.parts, job.request.resolution
    found = problems(root, resolution if resolution != "all" else "480p", parts)
    if "lora" in parts and resolution == "all":
        found += [p for p in problems(root, "720p", ("lora",)) if p not in found]
    if found:
        names = [rel if why == "missing" else f"{rel} ({why})" for rel, why in found]
        raise WeightsMissingError(
            f"download finished but {len(found)} files are missing or incomplete in {root}: {list_names(names)}",
            hint="run the same command again to fetch them (finished files are kept)",
        )


def _fmt_missing(report: DownloadReport) -> str:
    first = report.pending[0].item.dest
    return f"{len(report.pending)} missing files ({first}{', …' if len(report.pending) > 1 else ''})"


def _guard(fn: Callable, repo_key: str, revs: dict[str, str], path: str = ""):
    """Run fn; turn Hub / network / disk failures into one-line errors (exit 4)."""
    try:
        return fn()
    except EverAnimateError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped below or re-raised unchanged
        mapped = hub_error(exc, REPOS[repo_key].repo_id, revs[repo_key], path)
        if mapped is None:
            raise
        raise mapped from exc


def _fetch_one(f: FileStatus, root: Path, examples_dir: Path | None, fetch: Fetcher,
               convert: Converter | None) -> None:  # fmt: skip
    it = f.item
    if it.part == "examples":
        staging = examples_dir / ".everanimate-download"
        got = fetch.download(f.repo_id, it.path, f.commit or f.revision, staging)
        dest = examples_dir / it.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, dest)
        return
    dest = root / it.dest
    if it.how == "folder":
        _fetch_folder(f, root, fetch)
        return
    if dest.exists():  # there but broken (truncated, empty): the Hub library would trust it, so remove it
        dest.unlink()
    if it.how == "copy":
        local_dir = root / it.dest[: -len(it.path)]
        got = fetch.download(f.repo_id, it.path, f.commit or f.revision, local_dir)
        if Path(got).resolve() != dest.resolve():
            raise WeightsInvalidError(f"{it.path} landed at {got}, expected {dest}")
        if not file_ok(dest):
            dest.unlink()
            raise WeightsInvalidError(
                f"{it.dest} from {f.repo_id} is not a valid file (truncated download?)",
                hint="run the same command again to fetch it anew",
            )
        return
    staged = fetch.download(f.repo_id, it.path, f.commit or f.revision, root / STAGING_DIR / it.repo)
    if it.how == "unzip":
        _unzip_member(Path(staged), it.member, dest)
    elif it.how == "convert":
        if convert is None:
            from animate_cli.weights.convert import convert_shard as convert
        try:
            convert(Path(staged), dest)
        except (ValueError, KeyError) as exc:
            raise WeightsInvalidError(
                f"cannot convert {it.path} from {f.repo_id}: {exc}", hint="delete it from .staging/ and run the command again"
            ) from exc
    elif it.how == "index":
        from animate_cli.weights.convert import write_index

        shards = [TRANSFORMER_SHARD.format(i=i + 1, n=ORIG_SHARDS) for i in range(ORIG_SHARDS)]
        try:
            write_index(dest.parent, shards, dest.name, reference=Path(staged))
        except (ValueError, KeyError, OSError) as exc:
            raise WeightsInvalidError(
                f"converted transformer does not match {f.repo_id}'s layout: {exc}",
                hint="report this; the conversion in weights/convert.py needs updating",
            ) from exc
    else:
        raise ValueError(f"unknown item kind {it.how!r}")
    if Path(staged).exists():
        Path(staged).unlink()  # the staged zip / original shard / reference index is no longer needed


def _fetch_folder(f: FileStatus, root: Path, fetch: Fetcher) -> None:
    """Every file of a folder item at the pinned commit; files already there at their listed size are kept
    (a resumed download fetches only the rest), then the folder must pass the ONNX structural check."""
    it, rev = f.item, f.commit or f.revision
    dest, local_dir = root / it.dest, root / it.dest[: -len(it.path)]
    if f.stale and dest.is_dir():
        shutil.rmtree(dest)  # another commit's files: none of them may be mixed with this one's
    members = f.members or fetch.listing(f.repo_id, rev, it.path + "/")
    if not members:
        raise WeightsInvalidError(f"{it.path} is empty or absent in {f.repo_id}@{rev[:12]}",
                                  hint="the registry in animate_cli/weights/registry.py needs updating, or pass an older --revision")  # fmt: skip
    for path, size in sorted(members.items()):
        target = local_dir / path
        if target.is_file() and target.stat().st_size == size:
            continue
        if target.exists():  # a damaged copy: the Hub library would trust it
            target.unlink()
        got = Path(fetch.download(f.repo_id, path, rev, local_dir))
        if got.stat().st_size != size:
            n = got.stat().st_size
            got.unlink()
            raise WeightsInvalidError(f"{path} from {f.repo_id} came down as {n} bytes, the Hub lists {size}",
                                      hint="run the same command again to fetch it anew")  # fmt: skip
    if p := onnx_problem(dest):
        raise WeightsInvalidError(f"{it.dest} from {f.repo_id} is not a complete ONNX model: {p}",
                                  hint="run the same command again; files of the right size are kept")  # fmt: skip


def _unzip_member(zip_path: Path, member: str, dest: Path) -> None:
    """Extract the first `member` (by basename) of *this* zip to dest, atomically."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as z:
            names = [n for n in z.namelist() if Path(n).name == member]
            if not names:
                raise WeightsInvalidError(
                    f"{zip_path.name} has no {member}", hint="the pose registry in animate_cli/weights/registry.py needs updating"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            with z.open(sorted(names)[0]) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        zip_path.unlink(missing_ok=True)
        raise WeightsInvalidError(f"{zip_path.name} is not a valid zip (deleted it)", hint="run the same command again") from exc
    if problem_onnx(tmp):
        tmp.unlink()
        raise WeightsInvalidError(f"{member} in {zip_path.name} is not an ONNX model")
    os.replace(tmp, dest)


def _tidy(folder: Path) -> None:
    """Remove a staging folder once nothing but the Hub library's bookkeeping is left in it."""
    if not folder.is_dir():
        return
    leftovers = [p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts]
    if not leftovers:
        shutil.rmtree(folder, ignore_errors=True)

"""The jobs file of `everanimate batch` -> validated jobs, before any model loads.

A jobs file is CSV with a header row (`.csv`) or JSON Lines (`.jsonl`, `.ndjson`): one row or line per
video, with `ref`, `driving`, `out` and any per-video `run` option by its long name (`seconds`,
`ref-view` or `ref_view`, ...). Values are parsed by the option table (`options.OPTIONS[name].parse`),
so a row means exactly what the same flags mean to `run`. Relative paths are relative to the jobs
file's folder, so the same list works from any working directory (every node of a cluster).

Validation is cheap and touches no video content (a list of thousands is checked in a moment, on every
node): the columns, the values, the files exist and can be opened, one length at most, pose and face
videos together, no output that is an input, no two rows writing the same output or state folder. A
video that exists but cannot be decoded is found when its job runs, and fails that job only.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import BadInputError, EverAnimateError, UsageError

IO_COLUMNS = ("ref", "driving", "out")  # the three every row has; the rest are `run` options
LENGTH_OPTIONS = ("seconds", "minutes", "frames")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Job:
    """One valid row: the arguments of one `Animator.run`."""

    line: int  # where the row starts in the jobs file (1-based), as every message names it
    ref: Path
    driving: Path
    out: Path  # absolute, resolved: two jobs are the same output only if these are equal
    options: dict = field(default_factory=dict)  # per-video options by python name, parsed

    def to_dict(self) -> dict:
        return {"line": self.line, "out": str(self.out)}


@dataclass(frozen=True)
class BadRow:
    line: int
    message: str  # every problem of the row, on one line
    out: str = ""  # the row's output as its `out` cell names it (resolved), so a report can say which video it was

    def to_dict(self) -> dict:
        return {"line": self.line, "out": self.out, "message": self.message}


@dataclass(frozen=True)
class JobList:
    path: Path
    jobs: list[Job]
    invalid: list[BadRow]


def read_jobs(path: Path, defaults: dict | None = None) -> JobList:
    """Parse and validate every row of `path`. A file that cannot be read as a jobs file at all raises
    (UsageError, exit 2; BadInputError, exit 3, when it is missing); a bad row becomes a BadRow.
    `defaults`: per-video options (parsed, paths absolute) for every row, the command line's; a row's own
    value wins, and a row giving one of a group (a length; the pose/face pair) replaces the whole group."""
    path = Path(path).expanduser()
    rows = _read_rows(path)
    base = path.resolve().parent
    jobs, invalid = [], []
    for line, row in rows:
        try:
            jobs.append(_with_defaults(_job(line, row, base), defaults or {}))
        except _RowProblems as e:
            invalid.append(BadRow(line, "; ".join(e.problems), _named_out(row, base)))
    jobs, invalid = _refuse_shared_outputs(jobs, invalid)
    return JobList(path, jobs, sorted(invalid, key=lambda b: b.line))


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """[(line, {column: raw value})] in file order; blank rows are skipped."""
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise UsageError(f"jobs file {path} must end in .csv (with a header row) or .jsonl (one JSON object per line)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is not part of a header
    except FileNotFoundError:
        raise BadInputError(f"jobs file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"cannot read jobs file {path}: {e}") from None
    rows = _csv_rows(text, path) if suffix in CSV_SUFFIXES else _jsonl_rows(text)
    if not rows:
        raise UsageError(f"jobs file {path} has no jobs")
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as e:
        raise UsageError(f"jobs file {path}: line 1: {e}") from None
    header = [h.strip() for h in header]
    if not all(header) or len(set(header)) != len(header):
        raise UsageError(f"jobs file {path}: the header row has an empty or repeated column name: {','.join(header)}")
    rows, start = [], reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise UsageError(f"jobs file {path}: line {start}: {e}") from None
        if any(c.strip() for c in cells):
            if len(cells) > len(header):
                rows.append((start, {"": f"{len(cells)} cells but the header has {len(header)} columns"}))
            else:
                rows.append((start, {h: c for h, c in zip(header, cells, strict=False) if c.strip()}))
        start = reader.line_num + 1
    return rows


def _jsonl_rows(text: str) -> list[tuple[int, dict]]:
    rows = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as e:
            rows.append((n, {"": f"not JSON ({e.msg} at column {e.colno})"}))
            continue
        if not isinstance(obj, dict):
            rows.append((n, {"": "not a JSON object"}))
            continue
        rows.append((n, {k: v for k, v in obj.items() if v is not None}))
    return rows


class _RowProblems(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems


def _job(line: int, row: dict, base: Path) -> Job:
    """One row -> a Job, or _RowProblems naming everything wrong with it."""
    from animate_cli.options import BATCH, OPTIONS, VIDEO

    if "" in row:  # the reader's own problem with the row (not JSON, too many cells): nothing else to check
        raise _RowProblems([str(row[""])])
    problems: list[str] = []
    io_paths: dict[str, Path] = {}
    options: dict = {}
    for key, raw in row.items():
        name = key.strip().lower().replace("-", "_")
        if name in IO_COLUMNS:
            if not isinstance(raw, str) or not raw.strip():
                problems.append(f"{name}: must be a path")
            else:
                io_paths[name] = _path(raw.strip(), base)
            continue
        option = OPTIONS.get(name)
        if option is None or BATCH not in option.commands:
            problems.append(f"unknown column {key!r} (not an option of `run`)")
            continue
        if option.level != VIDEO:
            where = "give it once on the command line" if option.level == "model" else "it applies to the whole batch"
            problems.append(f"{option.flag} is not a per-video option: {where}")
            continue
        try:
            options[name] = _relative(option.parse(raw), base)
        except EverAnimateError as e:
            problems.append(e.message)
    problems += [f"{name}: missing" for name in IO_COLUMNS if name not in io_paths and name not in _named(row)]
    if all(name in io_paths for name in IO_COLUMNS):
        problems += _check(io_paths, options)
    if problems:
        raise _RowProblems(problems)
    return Job(line, io_paths["ref"], io_paths["driving"], io_paths["out"], options)


def command_line_defaults(values: dict) -> dict:
    """The per-video options given on the command line (those not at the option's default), paths made
    absolute against the working folder: the defaults of every row."""
    from animate_cli.options import OPTIONS

    given = {}
    for name, value in values.items():
        if value is None or value == OPTIONS[name].default or (OPTIONS[name].multiple and not value):
            continue
        given[name] = _relative(value, Path.cwd())
    return given


GROUPS = (LENGTH_OPTIONS, ("pose_video", "face_video"))  # options that only make sense together, or one of


def _with_defaults(job: Job, defaults: dict) -> Job:
    if not defaults:
        return job
    fill = dict(defaults)
    for group in GROUPS:
        if any(job.options.get(name) is not None for name in group):
            for name in group:
                fill.pop(name, None)
    options = {**fill, **job.options}
    problems = _check({"ref": job.ref, "driving": job.driving, "out": job.out}, options)
    if problems:
        raise _RowProblems(problems)
    return Job(job.line, job.ref, job.driving, job.out, options)


def _named(row: dict) -> set[str]:
    return {k.strip().lower().replace("-", "_") for k in row}


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def _relative(value, base: Path):
    """A parsed path (or list of paths) made absolute against the jobs file's folder."""
    if isinstance(value, Path):
        return _path(str(value), base)
    if isinstance(value, list | tuple) and value and all(isinstance(v, Path) for v in value):
        return [_path(str(v), base) for v in value]
    return value


def _check(io_paths: dict[str, Path], options: dict) -> list[str]:
    """What `run` would refuse in this row, as far as it can be told without decoding a video."""
    from animate_cli.media.guard import same_file

    problems = []
    inputs = [("ref", io_paths["ref"]), ("driving", io_paths["driving"]),
              *(("ref_view", v) for v in options.get("ref_view") or ()),
              *((k, options[k]) for k in ("pose_video", "face_video") if options.get(k) is not None)]  # fmt: skip
    for name, p in inputs:
        problem = _unreadable(p)
        if problem:
            problems.append(f"{name} {p}: {problem}")
    for name in ("det_onnx", "pose_onnx"):
        if options.get(name) is not None and not Path(options[name]).exists():
            problems.append(f"{name} {options[name]}: not found")
    given = [k for k in LENGTH_OPTIONS if options.get(k) is not None]
    if len(given) > 1:
        problems.append(f"only one of seconds, minutes, frames (this row has {', '.join(given)})")
    if (options.get("pose_video") is None) != (options.get("face_video") is None):
        problems.append("pose_video and face_video must be given together")
    if len(options.get("ref_view") or ()) > C.MAX_REF_VIEWS:
        problems.append(f"at most {C.MAX_REF_VIEWS} ref_view images")
    out = io_paths["out"]
    for name, p in inputs:
        if same_file(out, p):
            problems.append(f"out {out} is the {name}; refusing to write over an input")
    if out.is_dir():
        problems.append(f"out {out} is a folder")
    return problems


def _unreadable(path: Path) -> str | None:
    """None when `path` is a file we can open and read, else why not (a few words)."""
    if not path.exists():
        return "not found"
    if not path.is_file():
        return "not a file"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return e.strerror or str(e)
    return None


def state_folder(job: Job) -> Path:
    """The job's resume state folder, as `run` names it (the `state_dir` option, else <out>.everanimate-state)."""
    given = job.options.get("state_dir")
    return Path(given) if given is not None else job.out.with_name(job.out.name + ".everanimate-state")


def _refuse_shared_outputs(jobs: list[Job], invalid: list[BadRow]) -> tuple[list[Job], list[BadRow]]:
    """Rows writing the same output (or the same state folder) are all refused: which one was meant is unknown."""
    first: dict[Path, int] = {}
    clash: dict[int, str] = {}
    for job in jobs:
        for what, p in (("out", job.out), ("state folder", state_folder(job).resolve())):
            if p in first and first[p] != job.line:
                clash.setdefault(job.line, f"{what} {p} is also the {what} of line {first[p]}")
                clash.setdefault(first[p], f"{what} {p} is also the {what} of line {job.line}")
            first.setdefault(p, job.line)
    kept = [j for j in jobs if j.line not in clash]
    outs = {j.line: str(j.out) for j in jobs}
    return kept, invalid + [BadRow(line, msg, outs[line]) for line, msg in clash.items()]


def _named_out(row: dict, base: Path) -> str:
    """The `out` cell of a bad row as a path, or "" when it has none a path can be made of."""
    raw = next((v for k, v in row.items() if isinstance(k, str) and k.strip().lower() == "out"), None)
    return str(_path(raw.strip(), base)) if isinstance(raw, str) and raw.strip() else ""

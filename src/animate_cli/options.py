"""Every option of `run`, `extract-pose`, `inspect` and `batch`, declared once, and the frozen `RunConfig`.

    OPTIONS["seam_fix"]            -> Option: flag, type (an Enum for fixed choices), default, help, level, commands
    OPTIONS["steps"].parse("3")    -> 3   (a CSV cell, a JSON value or a Python value; UsageError naming the flag)
    parse_all(values, levels=...)  -> the parsed dict, unknown names refused in one line

The Typer commands (cli/params.py) and `RunConfig`'s defaults both come from this table, so adding an option is
one entry here plus its use. Levels: "model" options are given once, where the models load (`Animator(...)`),
"video" options belong to one video (`Animator.run(...)`, a row of a batch list), "command" options say how a
command behaves (--json, --progress, --dry-run). Nothing here imports torch, typer or the stages.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from animate_cli import config as C
from animate_cli.config import LoraSpec
from animate_cli.errors import UsageError


def _choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A str Enum whose members are the allowed values (member name = value, upper-cased)."""
    return Enum(name, {v.upper().replace("-", "_"): v for v in values}, type=str)


Dtype = _choices("Dtype", C.DTYPES)
Resolution = _choices("Resolution", C.RESOLUTIONS)
Fit = _choices("Fit", C.FITS)
Offload = _choices("Offload", C.OFFLOAD_MODES)
WeightsDtype = _choices("WeightsDtype", C.WEIGHTS_DTYPES)
Attention = _choices("Attention", C.ATTENTION_CHOICES)
PoseModel = _choices("PoseModel", C.POSE_MODELS)
SeamFix = _choices("SeamFix", C.SEAM_FIX_MODES)
Smooth = _choices("Smooth", C.POSE_SMOOTH_MODES)
Progress = _choices("Progress", C.PROGRESS_MODES)

MODEL, VIDEO, COMMAND = "model", "video", "command"
LEVELS = (MODEL, VIDEO, COMMAND)

RUN, POSE, INSPECT, BATCH = "run", "extract-pose", "inspect", "batch"

# rich help panels of `run`
LENGTH = "Length (one of; default: the driving video's duration)"
SAMPLING = "Model and sampling"
IO = "Inputs and output"
SPEED = "Memory and speed"
GEOMETRY = "Geometry"
WORKERS = "Workers"  # batch

TRUE_WORDS = ("1", "true", "yes", "on", "y")  # what a CSV cell or environment-style string may say for a flag
FALSE_WORDS = ("0", "false", "no", "off", "n", "")
LIST_SEPARATOR = ";"  # a repeatable option in one CSV cell: "a.png;b.png" (paths may hold commas, rarely semicolons)
STEPS_RANGE = (1, 1000)  # fewer than 1 is no sampling; beyond 1000 is a typo (the LoRA was tuned with 20)


@dataclass(frozen=True)
class Option:
    """One option as every command shows it and the Python API takes it.

    `kind` is the type of one value: str, int, float, bool, Path or an Enum (fixed choices; the parsed value is
    the member's value, a str). `multiple`: repeatable on the command line, a list in Python. `check` validates
    (and may normalise) a parsed value. `variants` holds what differs for one command (help text, default),
    applied by `for_command`."""

    name: str
    kind: Any
    default: Any
    help: str
    level: str
    commands: tuple[str, ...]
    panel: str | None = None
    multiple: bool = False
    metavar: str | None = None
    short: str | None = None
    negatable: bool = False  # --x/--no-x instead of a bare --x flag
    envvar: str | None = None
    show_default: bool | str = True
    check: Callable[[Any], Any] | None = None
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...] | None:
        return tuple(m.value for m in self.kind) if isinstance(self.kind, type) and issubclass(self.kind, Enum) else None

    def for_command(self, command: str) -> Option:
        """This option as `command` shows it (its variant's help, default, ...)."""
        return dataclasses.replace(self, **self.variants.get(command, {}))

    def parse(self, value: Any) -> Any:
        """A CLI, CSV, JSON or Python value -> the value the API takes; UsageError (one line, naming the flag)."""
        if self.multiple:
            if value is None or value == "":
                return ()
            items = value.split(LIST_SEPARATOR) if isinstance(value, str) else list(value)
            parsed = tuple(self._one(v) for v in items if not (isinstance(v, str) and not v.strip()))
        else:
            parsed = self._one(value)
        return self.check(parsed) if self.check is not None and parsed is not None else parsed

    def _one(self, value: Any) -> Any:
        if value is None or (value == "" and self.kind is not str):
            return self.default if not self.multiple else None
        kind = self.kind
        if self.choices is not None:
            text = value.value if isinstance(value, Enum) else str(value)
            if text not in self.choices:
                raise UsageError(f"{self.flag} must be one of {', '.join(self.choices)}, got {text!r}")
            return text
        if kind is bool:
            return _bool(self.flag, value)
        if kind is int:
            return _number(self.flag, value, int, "an integer")
        if kind is float:
            return _number(self.flag, value, float, "a number")
        if kind is Path:
            return value if isinstance(value, Path) else Path(str(value))
        return kind(value)


def _bool(flag: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE_WORDS or text in FALSE_WORDS:
        return text in TRUE_WORDS
    raise UsageError(f"{flag} must be true or false, got {value!r}")


def _number(flag: str, value: Any, kind: type, what: str):
    if isinstance(value, bool):
        raise UsageError(f"{flag} must be {what}, got {value!r}")
    try:
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be {what}, got {value!r}") from None


# --- checks (each runs once, on the parsed value) ---------------------------------------------------------------


def _workers(n: int) -> int:
    if n < 1:
        raise UsageError("--workers must be at least 1")
    return n


def _steps(n: int) -> int:
    if not STEPS_RANGE[0] <= n <= STEPS_RANGE[1]:
        raise UsageError(f"--steps must be between {STEPS_RANGE[0]} and {STEPS_RANGE[1]}")
    return n


def _device(text: str) -> str:
    if text not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", text):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def parse_size(text: str) -> tuple[int, int]:
    """'832x480' -> (832, 480); UsageError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--size must look like 832x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _size(text: str) -> str:
    parse_size(text)
    return text


def parse_lora(value: str | LoraSpec) -> LoraSpec:
    """'PATH[:SCALE]' -> LoraSpec (a colon not followed by a number belongs to the path)."""
    if isinstance(value, LoraSpec):
        return value
    path, scale = str(value), 1.0
    head, colon, tail = path.rpartition(":")
    if colon and re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", tail):
        path, scale = head, float(tail)
    return LoraSpec(Path(path).expanduser(), scale)


def _loras(values: tuple) -> tuple[LoraSpec, ...]:
    return tuple(parse_lora(v) for v in values)


# --- the table --------------------------------------------------------------------------------------------------

_WAN_OR_RTMW = ("wan (Wan2.2-Animate's own YOLOv10m + ViTPose-H, what the model was trained on) or rtmw (lighter); "
                "default: wan when its models are in the weights folder, else rtmw")  # fmt: skip

_TABLE = (
    Option("out", Path, None, "Output mp4 (default: <driving>-everanimate.mp4 here).", VIDEO, (RUN, POSE), IO, short="-o",
           variants={POSE: {"help": "Output folder.", "show_default": "./<video name>-pose", "panel": None}}),
    Option("minutes", float, None, "Output length in minutes.", VIDEO, (RUN, BATCH), LENGTH),
    Option("seconds", float, None, "Output length in seconds.", VIDEO, (RUN, POSE, BATCH), LENGTH,
           variants={POSE: {"help": "Use at most this many seconds.", "show_default": "to the end", "panel": GEOMETRY}}),
    Option("frames", int, None, "Output length in frames (25 fps).", VIDEO, (RUN, BATCH), LENGTH),
    Option("ref_view", Path, None, "Extra view of the same person (repeatable, up to 3).", VIDEO, (RUN, BATCH), IO,
           multiple=True, metavar="PATH"),
    Option("pose_video", Path, None, "Pre-extracted Wan-Animate pose video (with --face-video).", VIDEO, (RUN, BATCH), IO),
    Option("face_video", Path, None, "Pre-extracted 512x512 face video (with --pose-video).", VIDEO, (RUN, BATCH), IO),
    Option("weights_dir", Path, None, "Weights folder (default: where download-weights puts them).", MODEL,
           (RUN, POSE, INSPECT, BATCH), SAMPLING, envvar=C.WEIGHTS_ENV,
           variants={POSE: {"help": "Where download-weights put the models (wan: wan2.2-animate-14b/process_checkpoint/, "
                                    "rtmw: pose/*.onnx).", "panel": None},
                     INSPECT: {"help": "Where download-weights put the pose models.", "panel": None}}),
    Option("device", str, "auto", "auto, cuda, cuda:N or cpu.", MODEL, (RUN, POSE, BATCH), SAMPLING, metavar="DEVICE",
           check=_device, variants={POSE: {"help": "auto, cpu, cuda or cuda:N (onnxruntime).", "panel": None}}),
    Option("dtype", Dtype, "bf16", "Compute precision.", MODEL, (RUN, BATCH), SAMPLING),
    Option("resolution", Resolution, "480p", "480p or 720p (720p uses the 720p beta LoRA).", VIDEO, (RUN, POSE, BATCH),
           SAMPLING, variants={POSE: {"default": None, "show_default": "480p", "panel": GEOMETRY, "help":
                               "480p (~832x480 px) or 720p (~1280x720 px): with --ref, the reference's aspect at that pixel "
                               "count (as run); otherwise the preset, swapped for portrait videos."}}),  # fmt: skip
    Option("size", str, None, "Explicit WxH, multiples of 16 (default: the reference's aspect at about --resolution's "
           "pixel count).", VIDEO, (RUN, POSE, BATCH), SAMPLING, metavar="WxH", check=_size,
           variants={POSE: {"help": "Pose video size WxH (multiples of 16).", "panel": GEOMETRY}}),
    Option("fit", Fit, None, "How the reference goes onto a --size of another aspect: pad (default; whole picture, black "
           "bars), crop (centre) or stretch.", VIDEO, (RUN, BATCH), SAMPLING),
    Option("steps", int, None, "Denoising steps per chunk (default 20; with --fast 4, and 4 to 8).", VIDEO, (RUN, BATCH),
           SAMPLING, check=_steps),
    Option("fast", bool, False, "Draft: stack the lightx2v step-distill LoRA and sample 4 DiT steps per chunk instead of "
           "20 (fetch it with download-weights --only fast). Try settings on a draft, then run full quality.", MODEL,
           (RUN, BATCH), SAMPLING),
    Option("seed", int, 0, "Seed; chunk c uses seed + 42c.", VIDEO, (RUN, BATCH), SAMPLING),
    Option("prompt", str, C.DEFAULT_PROMPT, "Text prompt.", VIDEO, (RUN, BATCH), SAMPLING),
    Option("lora", str, None, "Extra LoRA, SCALE default 1 (repeatable).", MODEL, (RUN, BATCH), SAMPLING, multiple=True,
           metavar="PATH[:SCALE]", check=_loras),
    Option("offload", Offload, "auto", "none or blocks (stream DiT blocks from host memory); auto picks by free VRAM.",
           MODEL, (RUN, BATCH), SPEED),
    Option("weights_dtype", WeightsDtype, "bf16", "fp8: e4m3 storage of the DiT's block and face-adapter weights "
           "(changes the output slightly).", MODEL, (RUN, BATCH), SPEED),
    Option("attention", Attention, "auto", "sage is approximate; auto never picks it.", MODEL, (RUN, BATCH), SPEED),
    Option("compile", bool, False, "Compile the repeated DiT blocks (torch.compile; no graph breaks in any "
           "--offload/--weights-dtype mode). Does nothing useful on the CPU, or for a run of one or two chunks "
           "(compiling is a one-off delay before the first step).", MODEL, (RUN, BATCH), SPEED, negatable=True),
    Option("no_audio", bool, False, "Do not copy the driving video's audio.", VIDEO, (RUN, BATCH), IO),
    Option("side_by_side", bool, False, "Write the pose panel next to the result.", VIDEO, (RUN, BATCH), IO),
    Option("overwrite", bool, False, "Replace an existing output file.", VIDEO, (RUN, POSE, INSPECT, BATCH), IO,
           variants={POSE: {"help": "Replace existing outputs.", "panel": None},
                     INSPECT: {"help": "Replace an existing report.", "panel": None}}),
    Option("fresh", bool, False, "Discard saved resume state and start over.", COMMAND, (RUN,), IO),
    Option("state_dir", Path, None, "Resume state folder (default: <out>.everanimate-state).", VIDEO, (RUN, BATCH), IO),
    Option("gpus", int, None, "Split every DiT step over N GPUs of this machine (Ulysses; N divides the 40 heads: 2, 4, "
           "5, 8, 10). Several machines: torchrun, see README.", COMMAND, (RUN, BATCH), SAMPLING,
           variants={BATCH: {"help": "Not with batch (one video per GPU: --workers N); refused with a pointer.",
                             "panel": WORKERS}}),
    Option("workers", int, None, "Worker processes on this machine, each loading the models once on its own GPU "
           "(default: one per visible GPU; 1 on the CPU).", COMMAND, (BATCH,), WORKERS, check=_workers),
    Option("skip_invalid", bool, False, "Run the valid rows when some are invalid (default: exit 2 naming each bad row, "
           "before any model loads).", COMMAND, (BATCH,), WORKERS),
    Option("dry_run", bool, False, "Validate inputs and print the chunk plan; loads no model.", COMMAND, (RUN, BATCH)),
    Option("pose_model", PoseModel, None, _WAN_OR_RTMW, VIDEO, (RUN, POSE, BATCH), IO,
           variants={POSE: {"panel": None}}),
    Option("det_onnx", Path, None, "Person detector ONNX for the pose stage (a file, or a folder holding end2end.onnx).",
           VIDEO, (RUN, POSE, BATCH), IO, variants={POSE: {"panel": None, "help": "Person detector ONNX (a file, or a "
                                                            "folder holding end2end.onnx) instead of the weights folder's."}}),
    Option("pose_onnx", Path, None, "Whole-body pose ONNX for the pose stage (a file, or a folder holding end2end.onnx).",
           VIDEO, (RUN, POSE, BATCH), IO, variants={POSE: {"panel": None, "help": "Whole-body pose ONNX (a file, or a "
                                                             "folder holding end2end.onnx) instead of the weights folder's."}}),
    Option("retarget", bool, False, "Rescale the driving skeleton's limbs to the reference person's proportions.", VIDEO,
           (RUN, POSE, BATCH), IO, variants={POSE: {"panel": None}}),
    Option("no_report", bool, False, "Do not write NAME.report.json/.png next to the output NAME.mp4 (seams, drift, "
           "identity, pose).", VIDEO, (RUN, BATCH), IO),
    Option("seam_fix", SeamFix, "none", "color: ease each chunk's colour into the previous chunk's over 8 frames "
           "(changes the output).", VIDEO, (RUN, BATCH), SAMPLING),
    Option("json", bool, False, "Print one JSON summary on stdout.", COMMAND, (RUN, POSE, INSPECT, BATCH),
           variants={POSE: {"help": "Print one JSON object on stdout."}, INSPECT: {"help": "Print one JSON object on stdout."}}),
    Option("progress", Progress, "rich", "rich: bars with ETA on stderr; json: one JSON event per line on stderr (for "
           "GUIs/scripts); none: quiet.", COMMAND, (RUN, INSPECT, BATCH)),
    # extract-pose and inspect only
    Option("fps", float, float(C.FPS), "Output frame rate; the driving video is resampled by timestamps.", VIDEO, (POSE,),
           GEOMETRY),
    Option("start", float, 0.0, "Start this many seconds into the driving video.", VIDEO, (POSE,), GEOMETRY),
    Option("ref", Path, None, "Reference image: sets the orientation; needed by --retarget; must show a person.", VIDEO,
           (POSE, INSPECT), variants={INSPECT: {"help": "Reference image: drift and identity against it."}}),
    Option("driving", Path, None, "Driving video: enables pose adherence (needs the pose models).", VIDEO, (INSPECT,)),
    Option("smooth", Smooth, None, "rtmw: default (zero-phase One-Euro on keypoints and face box) or none (per frame). "
           "wan is always per frame, as the official pipeline.", VIDEO, (POSE,)),
    Option("kpt_thr", float, None, "rtmw: keypoint score threshold (default: 0.5 x the clip's median torso score); wan "
           "uses Wan's fixed 0.5.", VIDEO, (POSE,)),
    Option("save_keypoints", bool, False, "Also write keypoints.npz.", VIDEO, (POSE,)),
    Option("debug_overlay", bool, False, "Also write debug_overlay.mp4 (skeleton and face box over the video).", VIDEO,
           (POSE,)),
    Option("chunks", str, "auto", "auto (the run's record, else the 77/73-frame rule) or the frames where chunks 1, 2, "
           "... start, e.g. 77,150,223.", VIDEO, (INSPECT,)),
    Option("pose", bool, True, "Run the pose models for identity and pose adherence (slow on a CPU).", VIDEO, (INSPECT,),
           negatable=True),
)  # fmt: skip

OPTIONS: Mapping[str, Option] = {o.name: o for o in _TABLE}


def for_command(command: str) -> list[Option]:
    """The options `command` takes, as it shows them, in table order."""
    return [o.for_command(command) for o in _TABLE if command in o.commands]


def names(level: str, command: str = RUN) -> tuple[str, ...]:
    """The python names of `command`'s options at `level` (model, video or command)."""
    return tuple(o.name for o in _TABLE if o.level == level and command in o.commands)


def parse_all(values: Mapping[str, Any], allowed: Iterable[str], where: str, command: str = RUN) -> dict[str, Any]:
    """Parse `values` by name (as `command` has each option: its default for a missing value); a name not in
    `allowed` is refused in one line that names it and `where` it was given. Missing names are not filled in
    (see `with_defaults`)."""
    allowed = set(allowed)
    unknown = sorted(set(values) - allowed)
    if unknown:
        misplaced = [n for n in unknown if n in OPTIONS]
        detail = ", ".join(f"{n} (a {OPTIONS[n].level} option)" if n in misplaced else n for n in unknown)
        raise UsageError(f"{where} does not take {detail}")
    return {name: OPTIONS[name].for_command(command).parse(value) for name, value in values.items()}


def with_defaults(values: Mapping[str, Any], wanted: Iterable[str], command: str = RUN) -> dict[str, Any]:
    """`values` plus each wanted option's default (as `command` has it) where it was not given."""
    return {n: values[n] if n in values else OPTIONS[n].for_command(command).parse(None) for n in wanted}


def option_field(name: str, *, convert: Callable[[Any], Any] | None = None) -> Any:
    """A RunConfig field whose default is option `name`'s (converted, e.g. a list to a tuple)."""
    default = OPTIONS[name].default
    return field(default=convert(default) if convert else default, metadata={"option": name})


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one `everanimate run`, built from the parsed options (runner/run_config.py);
    a field with an "option" in its metadata takes that option's default and parsed value as is."""

    ref: Path
    driving: Path
    out: Path
    frames: int  # exact number of output frames (at FPS), from --minutes/--seconds/--frames or the driving video
    width: int
    height: int
    weights_dir: Path
    ref_views: tuple[Path, ...] = ()
    pose_video: Path | None = option_field("pose_video")
    face_video: Path | None = option_field("face_video")
    resolution: str = option_field("resolution")
    device: str = option_field("device")
    dtype: str = option_field("dtype")
    steps: int = C.STEPS  # --steps, or its default: 20, 4 with --fast (models/fast.py)
    seed: int = option_field("seed")
    prompt: str = option_field("prompt")
    loras: tuple[LoraSpec, ...] = ()
    audio: bool = True  # not --no-audio
    side_by_side: bool = option_field("side_by_side")
    overwrite: bool = option_field("overwrite")
    state_dir: Path | None = option_field("state_dir")  # resume state; default <out>.everanimate-state next to the output
    offload: str = option_field("offload")  # auto: device.choose picks the fastest mode the memory model fits
    weights_dtype: str = option_field("weights_dtype")
    attention: str = option_field("attention")
    compile: bool = option_field("compile")  # regional torch.compile of the repeated transformer blocks
    fit: str = "pad"  # how the reference (and views) go onto width x height: pad | crop | stretch (media/canvas.py)
    canvas_rule: str = ""  # one line for the plan: where width x height came from
    report: bool = True  # not --no-report: <stem>.report.json/.png next to the output (report/)
    seam_fix: str = option_field("seam_fix")  # "color": ease each chunk's colour into the previous chunk's (rollout/seamfix.py)
    pose_model: str | None = option_field("pose_model")  # None: wan when its files are in the weights folder, else rtmw
    det_onnx: Path | None = option_field("det_onnx")  # a file or a folder holding end2end.onnx
    pose_onnx: Path | None = option_field("pose_onnx")
    retarget: bool = option_field("retarget")
    fast: bool = option_field("fast")  # draft: the step-distill LoRA stacked, 4-8 steps (models/fast.py)  # the driving skeleton's limbs rescaled to the reference's proportions

    @property
    def resume_dir(self) -> Path:
        return self.state_dir or self.out.with_name(self.out.name + ".everanimate-state")

    @property
    def preview_path(self) -> Path:
        """Playable mp4 of every chunk finished so far, next to the output; removed when the output is written."""
        return self.out.with_name(self.out.stem + ".preview.mp4")

    @property
    def frame_width(self) -> int:
        """Width of the written frames: the pose panel doubles it with --side-by-side."""
        return self.width * (2 if self.side_by_side else 1)

"""`everanimate run`, start to finish. The one place where the stages meet, read top to bottom in `_run`:

    check inputs, plan -> [lock the state folder]
    1 setup: weights, device, memory mode, load options (no model loaded)
    2 clear: --fresh, what a killed run left, the free-space check
    3 pose on a worker thread | 4 open the resume state (refuse other settings, repair segments)
                              | 5 prompt + models (from the ModelCache: kept between an Animator's runs)
    6 resume point -> 7 rollout: for each chunk encode pose/face/CLIP, denoise in latent space, decode once
      into the chunk's segment (encoded on the writer thread), after chunk 0 build the identity memory, save
    8 mux: concat segments + driving audio -> output mp4 -> 9 summary -> 10 report

Host memory does not grow with video length: a chunk's 77 pose/face frames are read for that
chunk only, decoded frames go through a bounded queue into an H.264 segment writer, and only the few
frames the next chunk needs (last frame for CLIP, the sampled memory frames of chunk 0) are kept.
`RunSummary.timings_s` holds each stage's wall time and every chunk's laps (see rollout/loop.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli import config as C
from animate_cli import media
from animate_cli.errors import BadInputError, FolderBusyError, OutputExistsError, WriteFailedError
from animate_cli.media import locks
from animate_cli.options import RunConfig
from animate_cli.progress import NullReporter, Reporter
from animate_cli.rollout import resume
from animate_cli.rollout.context import CheckedInputs, ControlVideos, RunContext
from animate_cli.rollout.plan import ChunkPlan, plan_for
from animate_cli.rollout.resume import Opened, ResumePoint
from animate_cli.runner import disk
from animate_cli.runner.background import BackgroundJob, done_job
from animate_cli.runner.model_cache import ModelCache
from animate_cli.runner.pose_job import PoseForRun, extract_for_run

if TYPE_CHECKING:
    import torch

    from animate_cli.media.video import Measured
    from animate_cli.models import LoadOptions, Models
    from animate_cli.models.device import DeviceChoice
    from animate_cli.pose.choice import PoseModels
    from animate_cli.weights.installed import WeightPaths


@dataclass
class RunSummary:
    """A finished run: what `everanimate run` prints, and `to_dict()` what its --json holds."""

    config: RunConfig
    output: Path
    frames: int  # read back from the written output (media.measure), not the plan's count
    fps: int
    size: tuple[int, int]
    chunks: int
    resumed_from_chunk: int
    lora_modules: int
    device: str
    timings_s: dict = field(default_factory=dict)
    pose: dict = field(default_factory=dict)
    memory_mode: dict = field(default_factory=dict)  # offload, weights_dtype, predicted and measured peak GiB
    runtime: dict = field(default_factory=dict)  # offload, weights_dtype, attention, compile, compile_s
    report: dict = field(default_factory=dict)  # the report's paths and headline figures (report.after_run)
    duration_s: float = 0.0  # the output's duration, read back from the file
    repaired_chunks: list = field(default_factory=list)  # chunks whose damaged segment was decoded again

    def to_dict(self) -> dict:
        """The run as `--json` reports it (and the `done` event of --progress json)."""
        from animate_cli.runner.run_config import canvas_dict
        from animate_cli.weights import manifest

        cfg = self.config
        # frames and duration_s are read back from the written file, not taken from the plan
        return {"output": str(self.output), "frames": self.frames, "duration_s": round(self.duration_s, 3),
                "fps": self.fps, "size": list(self.size), "repaired_chunks": self.repaired_chunks,
                "chunks": self.chunks, "resumed_from_chunk": self.resumed_from_chunk, "steps": cfg.steps, "seed": cfg.seed,
                "lora_modules": self.lora_modules, "device": self.device, "timings_s": self.timings_s,
                "pose": self.pose, "weights": manifest.installed(cfg.weights_dir),
                "memory_mode": self.memory_mode, "runtime": self.runtime, "canvas": canvas_dict(cfg),
                "report": self.report}  # fmt: skip


@dataclass(frozen=True)
class RunHooks:
    """Callbacks into a run: a caller may stop it after any saved chunk, or show segments as they land."""

    on_chunk_done: Callable[[int], None] | None = None  # after chunk c's state is saved
    on_segment_done: Callable[[int, Path], None] | None = None  # on the writer thread, chunk c's segment complete


@dataclass
class Job:
    """One run as its steps share it: the config, the checked inputs, the plan (made once), progress, timings."""

    cfg: RunConfig
    checked: CheckedInputs
    plan: ChunkPlan
    reporter: Reporter
    hooks: RunHooks
    timings: dict = field(default_factory=dict)  # stage -> seconds, and the rollout's per-chunk laps
    t0: float = field(default_factory=time.monotonic)

    def lap(self, name: str, since: float) -> float:
        """Record `name` as the time since `since`; returns now."""
        now = time.monotonic()
        self.timings[name] = now - since
        return now


@dataclass(frozen=True)
class Setup:
    """Step 1 of a run: weights found, device and memory mode chosen, load options resolved; no model loaded."""

    paths: WeightPaths
    loras: list[tuple[Path, float]]  # the EverAnimate LoRA first, then --lora files, with their scales
    dev: DeviceChoice
    options: LoadOptions  # every memory/speed choice, consumed only by loading
    pose_models: PoseModels | None = None  # the pose model and its files (None with --pose-video)


@dataclass(frozen=True)
class Loaded:
    """Step 5: the prompt embedding and the models, each only when the run needs it."""

    text: torch.Tensor | None  # [1, 512, text_dim]; None when no chunk is left to generate
    models: Models | None  # None when nothing is left to generate or decode


# --- the run ----------------------------------------------------------------------------------------------------


def check_inputs(cfg: RunConfig) -> CheckedInputs:
    """Every bad input a user can give, reported before anything heavy happens."""
    from animate_cli.media.guard import refuse_inputs_as_outputs

    refuse_inputs_as_outputs(
        [("output", cfg.out), ("preview", cfg.preview_path)],
        [("reference image", cfg.ref), ("driving video", cfg.driving), *(("--ref-view", v) for v in cfg.ref_views),
         ("--pose-video", cfg.pose_video), ("--face-video", cfg.face_video)],
    )  # fmt: skip
    if cfg.out.exists() and not cfg.overwrite:
        raise OutputExistsError(f"output {cfg.out} already exists", hint="pass --overwrite to replace it, or choose --out")
    folder = next((p for p in (cfg.out.parent, *cfg.out.parent.parents) if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise BadInputError(f"output folder {cfg.out.parent} cannot be made: {folder} is a file")
    if len(cfg.ref_views) > C.MAX_REF_VIEWS:
        raise BadInputError(
            f"at most {C.MAX_REF_VIEWS} --ref-view images (identity memory has {C.ANCHORS} slots, one is the reference)"
        )
    ref = media.load_image(cfg.ref)
    views = tuple(media.load_image(v) for v in cfg.ref_views)
    driving = media.probe(cfg.driving)
    if cfg.frames < 1:
        raise BadInputError("the requested length is zero frames")
    return CheckedInputs(ref, views, driving, _pose_frames(cfg, driving))


def _pose_frames(cfg: RunConfig, driving: media.VideoInfo) -> int | None:
    """Output frames a given --pose-video covers (None when the pose is extracted); refuses empty or unequal videos."""
    if (cfg.pose_video is None) != (cfg.face_video is None):
        raise BadInputError("--pose-video and --face-video must be given together")
    if cfg.pose_video is None:
        if driving.frames_at(C.FPS) == 0:
            raise BadInputError(f"driving video {cfg.driving} has no frames")
        return None
    pose, face = media.probe(cfg.pose_video), media.probe(cfg.face_video)
    pose_frames = pose.frames_at(C.FPS)
    if pose_frames == 0:
        raise BadInputError(f"pose video {cfg.pose_video} has no frames")
    # Each video is read by its own timestamps, so they only need to cover the same time (to a frame).
    if abs(pose.duration - face.duration) >= 1.0 / min(pose.fps, face.fps):
        raise BadInputError(f"pose video lasts {pose.duration:.2f} s ({pose.frames} frames at {pose.fps:g} fps) but face "
                            f"video lasts {face.duration:.2f} s ({face.frames} frames at {face.fps:g} fps); they must match")  # fmt: skip
    return pose_frames


def make_plan_for(cfg: RunConfig, checked: CheckedInputs) -> ChunkPlan:
    """The run's chunk plan, made once: its ping-pong period is the given pose video's length, else the
    driving video's (the extracted pose video covers the driving video's time)."""
    return plan_for(cfg, checked.pose_frames or checked.driving.frames_at(C.FPS))


def run(cfg: RunConfig, reporter: Reporter | None = None, *, fresh: bool = False,
        on_chunk_done: Callable[[int], None] | None = None, on_segment_done: Callable[[int, Path], None] | None = None,
        cache: ModelCache | None = None) -> RunSummary:  # fmt: skip
    """Produce cfg.out (its folder is made when missing). The models come from `cache` (kept between the
    runs of one Animator), else they are loaded for this run. `on_chunk_done(c)` is called after chunk c's
    state is saved; `on_segment_done(c, path)`, on the writer thread, once chunk c's H.264 segment is
    complete under its real name (e.g. for a preview); an exception in it fails the run like a writer error.

    From right after the input checks to the end, the run holds the lock of its resume state folder
    (locks.py), so a second run on the same output is refused (FolderBusyError, exit 3) instead of
    working on the same state; the lock file survives --fresh, which empties the folder around it.

    Any file that cannot be written (disk full, quota, read-only or vanished folder) ends the run with
    WriteFailedError (exit 6): one line naming the file, and a hint saying how much to free where and
    which chunk the same command continues from (runner/disk.py)."""
    checked = check_inputs(cfg)
    job = Job(cfg, checked, make_plan_for(cfg, checked), reporter or NullReporter(), RunHooks(on_chunk_done, on_segment_done))
    try:
        _make_output_folder(cfg.out.parent)
        with locks.hold(cfg.resume_dir, _state_busy(cfg.resume_dir), log=job.reporter.log):
            try:
                return _run(job, fresh, cache or ModelCache())
            finally:
                _remove_partial_outputs(cfg)
    except WriteFailedError as e:
        raise disk.explain(e, _run_writes(cfg, job.plan)) from None


def _run(job: Job, fresh: bool, cache: ModelCache) -> RunSummary:
    cfg = job.cfg
    setup = _setup(cfg, job.reporter)  # 1
    _clear(job, fresh)  # 2
    settings = _resume_settings(cfg, setup)
    # 3. The pose and face videos: given, or extracted (once, cached) on a worker thread while the prompt is
    #    encoded and the models load. Only the whole clip can be extracted up front: tracking, gap filling and
    #    the zero-phase smoothing look at every frame, so extracting later chunks during the DiT would differ.
    with _pose_job(job, setup) as pose_job:
        # 4. The saved state, checked without the digests of pose videos still being extracted, so a saved run
        #    with other settings is refused before any model loads; damaged segments are removed.
        opened = resume.open_state(cfg.resume_dir, settings, job.plan.chunks, (cfg.frame_width, cfg.height),
                                   job.reporter.log)  # fmt: skip
        loaded = _load(job, setup, opened, cache, can_load=lambda: not pose_job.failed())  # 5
        pose = pose_job.result()
    job.timings["pose"], job.timings["pose_wait"] = pose_job.duration_s, pose_job.wait_s
    if "pose_video" not in settings:  # 6. every setting is known now: the point the rollout starts from
        settings |= {"pose_video": resume.file_digest(pose.pose_video), "face_video": resume.file_digest(pose.face_video)}
    point = resume.resume_point(cfg.resume_dir, settings, len(job.plan.chunks))
    segments, t = _generate(job, loaded, ControlVideos(pose.pose_video, pose.face_video), point)  # 7
    written = _mux(job, segments)  # 8
    job.lap("mux", t)
    job.lap("total", job.t0)
    summary = _summary(job, setup, loaded.models, point, pose, written, opened.repaired)  # 9
    if cfg.report:  # 10. <stem>.report.json/.png and the chunk record <stem>.chunks.json (report/; a failure only warns)
        _report(job, summary)
    return summary


# --- the steps, in order ----------------------------------------------------------------------------------------


def _setup(cfg: RunConfig, reporter: Reporter) -> Setup:
    """Step 1: weights and device, before any model is loaded (inputs were checked by run())."""
    from animate_cli import weights
    from animate_cli.models import LoadOptions, parallel
    from animate_cli.models import device as devmod
    from animate_cli.models.attention import APPROXIMATE_BACKENDS, resolve_attention

    paths = weights.resolve(cfg.weights_dir, cfg.resolution, need=("base", "lora"))
    pose_models = _pose_models(cfg, reporter)
    loras = [(paths.lora, 1.0), *((spec.path, spec.scale) for spec in cfg.loras)]
    for p, _ in loras:
        if not Path(p).is_file():
            raise BadInputError(f"LoRA file not found: {p}")
    tiny = weights.is_tiny(paths.base)
    # The memory mode (dev.offload, dev.weights_dtype) is resolved here from the footprint model (exit 5 when no
    # mode fits); tiny weights skip the model.
    dev = devmod.choose(cfg.device, cfg.dtype, allow_cpu=tiny or cfg.device == "cpu",
                        size=None if tiny else (cfg.width, cfg.height), offload=cfg.offload,
                        weights_dtype=cfg.weights_dtype)  # fmt: skip
    if dev.device == "cpu" and not tiny:
        reporter.log("warning: running the 14B model on the CPU; expect days per chunk")
    for note in dev.notes:  # e.g. pinned host memory found rounded: said once
        reporter.log(note)
    # Every memory/speed choice, resolved once; loading (models/loader.py, runtime.py) is the only consumer. The
    # attention backend is asked of diffusers now, so one it would refuse fails (or falls back) before any load.
    attention = resolve_attention(cfg.attention, dev.device, dev.dtype, devmod.compute_capability(dev.device),
                                  context_parallel=parallel.env_world_size() > 1, warn=reporter.log)  # fmt: skip
    options = LoadOptions(device=dev.device, dtype=dev.dtype, offload=dev.offload, weights_dtype=dev.weights_dtype,
                          attention=attention, compile=cfg.compile)  # fmt: skip
    if attention in APPROXIMATE_BACKENDS:
        reporter.log(f"warning: --attention {cfg.attention} is approximate (8-bit attention); frames differ from exact attention")
    return Setup(paths, loras, dev, options, pose_models)


def _pose_models(cfg: RunConfig, reporter: Reporter) -> PoseModels | None:
    """Which pose model, and its files (WeightsMissingError here, before any model loads); None with --pose-video."""
    if cfg.pose_video is not None:
        return None
    from animate_cli.pose.choice import choose_models

    pose_models = choose_models(cfg.pose_model, cfg.weights_dir, cfg.det_onnx, cfg.pose_onnx)
    if pose_models.note:
        reporter.log(f"warning: {pose_models.note}")
    return pose_models


def _clear(job: Job, fresh: bool) -> None:
    """Step 2: --fresh empties the state folder; what a killed run left goes; the run must clearly fit on disk."""
    state_dir = job.cfg.resume_dir
    if fresh:
        locks.clear_except_lock(state_dir)
    resume.remove_temporaries(state_dir)  # we hold the folder's lock: none belongs to a live writer
    _remove_partial_outputs(job.cfg)
    disk.check_space(_run_writes(job.cfg, job.plan))  # stop before any model loads when the run cannot fit


def _pose_job(job: Job, setup: Setup) -> BackgroundJob[PoseForRun]:
    """Step 3: the control videos, given or extracted on a worker thread (started by the `with` block)."""
    cfg = job.cfg
    if cfg.pose_video is not None:
        return done_job("pose", PoseForRun(cfg.pose_video, cfg.face_video, job.checked.pose_frames, {}))
    return BackgroundJob("pose", lambda r: extract_for_run(cfg, job.plan, setup.pose_models, setup.dev.device, r),
                         job.reporter)  # fmt: skip


def _load(job: Job, setup: Setup, opened: Opened, cache: ModelCache, can_load: Callable[[], bool]) -> Loaded:
    """Step 5: the prompt, encoded once (before the DiT loads, so umT5 and the DiT never share the GPU on a
    first run), then the models, only when there is something to generate or re-decode (and the pose stage
    has not already failed)."""
    n_chunks = len(job.plan.chunks)
    job.reporter.stage("load", 2, "prompt + models")
    t = time.monotonic()
    text = None
    if opened.next_chunk < n_chunks:
        text = _prompt_embedding(job.cfg.resume_dir, setup.paths.base, job.cfg.prompt, setup.options, cache)
    t = job.lap("prompt", t)
    job.reporter.advance("load")
    models = None
    if can_load() and (opened.next_chunk < n_chunks or opened.missing):
        models = cache.models(setup.paths.base, setup.loras, setup.options)
    job.reporter.advance("load")
    job.lap("load", t)
    return Loaded(text, models)


def _generate(job: Job, loaded: Loaded, control: ControlVideos, point: ResumePoint) -> tuple[list[Path], float]:
    """Step 7: roll out the remaining chunks (rollout/loop.py), segments encoded on a writer thread while the
    next chunk runs; then every chunk's segment, re-decoding a finished chunk whose kept length changed.
    Returns the segments and when the output's assembly started (the mux lap includes the re-decoding)."""
    from animate_cli.media.writer import SegmentWriter
    from animate_cli.rollout.loop import ensure_segment, run_chunks
    from animate_cli.rollout.seamfix import fixing_writer

    cfg, plan = job.cfg, job.plan

    def segment_done(c: int, path: Path) -> None:  # on the writer thread, once chunk c's segment is complete
        _write_preview(cfg, plan, c, job.reporter)
        if job.hooks.on_segment_done is not None:
            job.hooks.on_segment_done(c, path)

    with SegmentWriter(segment_done) as writer:
        if cfg.seam_fix == "color":  # frames are eased at each join on their way to the segments (rollout/seamfix.py)
            last = point.state.last_frame.numpy() if point.state else None
            writer = fixing_writer(writer, cfg.width, last, point.start_chunk - 1)
        ctx = RunContext(cfg, plan, job.checked, loaded.models, loaded.text, control, point, writer, job.reporter,
                         job.hooks.on_chunk_done)  # fmt: skip
        t = time.monotonic()
        if point.start_chunk < len(plan.chunks):
            chunk_times = run_chunks(ctx)
            writer.wait()
            job.timings |= _rollout_split(chunk_times)
        t = job.lap("rollout", t)
        segments = [ensure_segment(ctx, c) for c in range(len(plan.chunks))]
        writer.wait()
    return segments, t


def _mux(job: Job, segments: list[Path]) -> Measured:
    """Step 8: the output replaces anything only once it reads back with every planned frame (and duration);
    the audio starts at the driving video's first frame, as output frame 0 shows it (media.timeline)."""
    cfg, checked = job.cfg, job.checked
    audio = cfg.driving if (cfg.audio and checked.driving.has_audio) else None
    job.reporter.stage("mux", 1, "writing mp4")
    written = media.concat_with_audio(segments, cfg.out, job.plan.frames, C.FPS, audio, audio_start=checked.driving.video_start,
                                      tmp_dir=_partial_dir(cfg))  # fmt: skip
    cfg.preview_path.unlink(missing_ok=True)  # the output is complete: the preview has served its purpose
    job.reporter.artifact("output", cfg.out)
    job.reporter.advance("mux")
    return written


def _summary(job: Job, setup: Setup, models: Models | None, point: ResumePoint, pose: PoseForRun, written: Measured,
             repaired: list[int]) -> RunSummary:  # fmt: skip
    """Step 9: what the run did, read back from the written file where it can be."""
    cfg = job.cfg
    return RunSummary(config=cfg, output=cfg.out, frames=written.frames, fps=C.FPS, size=(cfg.width, cfg.height),
                      chunks=len(job.plan.chunks), resumed_from_chunk=point.start_chunk,
                      lora_modules=models.lora_modules if models else 0, device=setup.dev.name,
                      timings_s=_rounded(job.timings), pose=pose.info, memory_mode=_memory_summary(setup.dev),
                      runtime=models.summary() if models else {}, duration_s=written.duration_s,
                      repaired_chunks=repaired)  # fmt: skip


def _report(job: Job, summary: RunSummary) -> None:
    """Step 10: the seam, drift, identity and pose report next to the output."""
    from animate_cli import report

    cfg = job.cfg
    t = time.monotonic()
    summary.report = report.after_run(cfg.out, [(c.out_start, c.out_start + c.keep) for c in job.plan.chunks], C.FPS,
                                      seam_fix=cfg.seam_fix, driving=cfg.driving, ref=cfg.ref,
                                      weights_dir=cfg.weights_dir, overwrite=cfg.overwrite, reporter=job.reporter)  # fmt: skip
    summary.timings_s["report"] = round(time.monotonic() - t, 3)


# --- the pose stage alone (Animator.prepare_pose) ---------------------------------------------------------------


def prepare_pose(cfg: RunConfig, reporter: Reporter) -> PoseForRun | None:
    """The pose stage of cfg's run, into the pose cache the run reads (None when the pose videos are given).
    Loads no DiT and takes no lock of the state folder: another run may work on this process meanwhile."""
    from animate_cli.models import device as devmod

    checked = check_inputs(cfg)
    if cfg.pose_video is not None:
        return None
    _make_output_folder(cfg.out.parent)
    models = _pose_models(cfg, reporter)
    device = devmod.choose(cfg.device, cfg.dtype, allow_cpu=True).device
    return extract_for_run(cfg, make_plan_for(cfg, checked), models, device, reporter)


# --- helpers ----------------------------------------------------------------------------------------------------


def _make_output_folder(folder: Path) -> None:
    """The output's folder and any missing parents (one line, exit 6, when that cannot be done)."""
    from animate_cli.media.files import writing

    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)


def _run_writes(cfg: RunConfig, plan: ChunkPlan) -> disk.RunWrites:
    """What this run writes where, for the space check and the hint of a write failure."""
    import json

    from animate_cli import weights
    from animate_cli.runner.readiness import AUX_STATE_BYTES, aux_state_bytes

    try:
        config = json.loads((Path(cfg.weights_dir) / weights.BASE_DIR / "transformer" / "config.json").read_text())
        aux = aux_state_bytes(int(config["text_dim"]), cfg.width, cfg.height)
    except (OSError, ValueError, KeyError, TypeError):  # weights not there yet: the dry run's fixed allowance
        aux = AUX_STATE_BYTES
    return disk.RunWrites(cfg.out, cfg.resume_dir, cfg.frame_width, cfg.height, cfg.frames, len(plan.chunks), cfg.dtype,
                          cfg.pose_video is None, aux)  # fmt: skip


def _partial_dir(cfg: RunConfig) -> Path | None:
    """Where the preview and the output are written before their rename: the state folder when it is on the
    output's filesystem (a rename across filesystems is not atomic), else next to the output."""
    try:
        same = cfg.resume_dir.stat().st_dev == cfg.out.parent.stat().st_dev
    except OSError:
        same = False
    return cfg.resume_dir if same else None


def _remove_partial_outputs(cfg: RunConfig) -> None:
    """The preview's and output's temporary files next to the output (only there with --state-dir on another
    disk): removed on every exit path, and at the start in case a killed run left them."""
    for final in (cfg.out, cfg.preview_path):
        (final.parent / (final.name + ".partial.mp4")).unlink(missing_ok=True)


def _state_busy(state_dir: Path) -> Callable[[str], FolderBusyError]:
    return lambda who: FolderBusyError(
        f"{state_dir} is in use by another run ({who})",
        hint="wait for it to finish or stop it (a stopped or killed run frees it); use --out elsewhere to run both",
    )


def _weights_identity(base: Path, loras: list[tuple[Path, float]]) -> dict:
    """Cheap identity of the weights for the resume fingerprint: configs and file names/sizes."""
    files = sorted((str(p.relative_to(base)), p.stat().st_size) for p in base.rglob("*") if p.is_file())
    cfg_text = (base / "transformer" / "config.json").read_text() if (base / "transformer" / "config.json").exists() else ""
    return {
        "files": files,
        "transformer_config": cfg_text,
        "loras": [(Path(p).name, Path(p).stat().st_size, s) for p, s in loras],
    }


def _resume_settings(cfg: RunConfig, setup: Setup) -> dict:
    """What a saved state must match to be continued: everything that changes the frames (not offload or compile).
    The pose settings (model, --retarget, ...) enter through the digests of the pose videos they produce."""
    from animate_cli.models.attention import APPROXIMATE_BACKENDS
    from animate_cli.models.runtime import FP8_SKIP_PATTERN

    attention = setup.options.attention
    settings = {
        "ref": resume.file_digest(cfg.ref), "views": [resume.file_digest(v) for v in cfg.ref_views],
        "size": [cfg.width, cfg.height], "steps": cfg.steps, "seed": cfg.seed, "prompt": cfg.prompt, "dtype": cfg.dtype,
        "device": setup.dev.device.split(":")[0], "side_by_side": cfg.side_by_side,
        "weights": _weights_identity(setup.paths.base, setup.loras),
        "layout": [C.CHUNK_FRAMES, C.OVERLAP_FRAMES, C.ANCHORS, C.SHIFT, C.SEED_STRIDE, C.MEMORY_SEED_OFFSET],
        # FP8 storage changes the frames (and which layers it covers); offload and compile do not
        "weights_dtype": cfg.weights_dtype if cfg.weights_dtype == "bf16" else f"fp8 skip {FP8_SKIP_PATTERN}",
        **({"attention": attention} if attention in APPROXIMATE_BACKENDS else {}),  # exact backends: same frames
        **({"seam_fix": cfg.seam_fix} if cfg.seam_fix != "none" else {}),  # changes the frames written
    }  # fmt: skip
    if cfg.pose_video is not None:  # given, so their digests are known now
        settings |= {"pose_video": resume.file_digest(cfg.pose_video), "face_video": resume.file_digest(cfg.face_video)}
    return settings


def _memory_summary(dev: DeviceChoice) -> dict:
    """The memory mode used (with its prediction) and the measured GPU peak (torch.cuda.max_memory_allocated, GiB)."""
    import torch

    peak = None
    if dev.device.startswith("cuda"):
        peak = round(torch.cuda.max_memory_allocated(dev.device) / 2**30, 2)
    return {"offload": dev.offload, "weights_dtype": dev.weights_dtype, "predicted_gpu_gib": None, "predicted_host_gib": None,
            **dev.memory_mode, "measured_peak_gpu_gib": peak}  # fmt: skip


def _rollout_split(chunk_times: list[dict]) -> dict:
    """The rollout's DiT time, the rest of each chunk's time (what the GPU would wait on), and every chunk's laps."""
    dit = sum(c.get("dit", 0.0) for c in chunk_times)
    rest = sum(v for c in chunk_times for k, v in c.items() if k not in ("chunk", "dit"))
    return {"rollout_dit": dit, "rollout_outside_dit": rest, "chunks": chunk_times}


def _rounded(timings: dict) -> dict:
    out = {}
    for k, v in timings.items():
        out[k] = [{**c, **{n: round(x, 3) for n, x in c.items() if n != "chunk"}} for c in v] if k == "chunks" else round(v, 3)
    return out


def _prompt_embedding(state_dir: Path, base: Path, prompt: str, options: LoadOptions, cache: ModelCache) -> torch.Tensor:
    """[1, 512, text_dim] prompt embedding, saved in the state folder so a resumed run skips umT5."""
    from safetensors.torch import load_file, save

    from animate_cli.media.files import atomic_write_bytes

    saved = state_dir / "prompt.safetensors"
    if saved.exists():
        return load_file(str(saved))["text"]
    text = cache.prompt(base, prompt, options, C.TEXT_TOKENS)
    atomic_write_bytes(saved, save({"text": text.contiguous()}))
    return text


def _write_preview(cfg: RunConfig, plan: ChunkPlan, c: int, reporter: Reporter) -> None:
    """<out>.preview.mp4: every finished chunk up to c, playable while the run goes on. Takes the
    segments 0.. that exist with the plan's kept length (a run being extended re-decodes its old
    last chunk only at the end, so until then the preview stops before it)."""
    segments, frames = [], 0
    for spec in plan.chunks[: c + 1]:
        seg = resume.segment_path(cfg.resume_dir, spec.index, spec.keep)
        if not seg.exists():
            break
        segments.append(seg)
        frames += spec.keep
    if segments:  # replaces the previous preview only once it reads back with all `frames`
        media.write_preview(segments, cfg.preview_path, C.FPS, frames, tmp_dir=_partial_dir(cfg))
        reporter.artifact("preview", cfg.preview_path, chunks=len(segments))

"""`run --dry-run`: the plan, the memory modes and whether a real run could start now, as one dict.
Loads no model and imports no torch (the GPU is seen through nvidia-smi)."""

from __future__ import annotations

from pathlib import Path

from animate_cli.options import RunConfig


def dry_run(cfg: RunConfig, ranks: int = 1) -> dict:
    """What `run --dry-run --json` reports: {"dry_run": True, "output", "plan": the plan dict (+ canvas, memory
    modes, auto's pick, multi-GPU prediction), "ready", "readiness": [item dicts], "exit_code"}."""
    from animate_cli.models import fast as fast_mode
    from animate_cli.models.device import memory_report
    from animate_cli.rollout.plan import driving_frames_read, follow_mode
    from animate_cli.runner import multigpu, pipeline, readiness
    from animate_cli.runner.run_config import canvas_dict

    checked = pipeline.check_inputs(cfg)
    chunk_plan = pipeline.make_plan_for(cfg, checked)  # the plan the run itself makes
    plan = {**chunk_plan.to_dict(), "canvas": canvas_dict(cfg), "fast": fast_mode.plan_entry(cfg.fast, cfg.steps, cfg.weights_dir)}
    if cfg.pose_video is None:  # the pose stage extracts only what the chunks read (docs/video-time.md)
        plan["pose_frames_extracted"] = driving_frames_read(chunk_plan)
    memory = memory_report((cfg.width, cfg.height), cfg.device, cfg.offload, cfg.weights_dtype)
    plan["memory_modes"], plan["auto_mode"] = memory["modes"], memory["auto_mode"]
    plan["estimate"] = follow_mode(plan["estimate"], memory["estimate_mode"])  # the mode a run would use
    if ranks > 1:
        plan["multi_gpu"] = multigpu.predict(plan["tokens_per_call"], ranks)
    items = _readiness(cfg, plan, memory["auto_mode"])
    code = readiness.first_blocker_code(items)
    return {"dry_run": True, "output": str(cfg.out), "plan": plan, "ready": code == 0,
            "readiness": [i.to_dict() for i in items], "exit_code": code}  # fmt: skip


def _readiness(cfg: RunConfig, plan_dict: dict, auto_mode: dict) -> list:
    """weights, GPU, disk: each ok or a blocker with the exit code a real run would fail with."""
    from animate_cli import weights
    from animate_cli.runner import readiness

    need = ("base", "lora") if cfg.pose_video else ("base", "lora", *_pose_need(cfg))
    need += ("fast",) if cfg.fast else ()  # --fast: the step-distill LoRA (models/fast.py)
    w = readiness.weights_item(cfg.weights_dir, cfg.resolution, need)
    tiny = w.ok and weights.is_tiny(Path(cfg.weights_dir) / weights.BASE_DIR)
    modes = plan_dict.get("memory_modes", [])
    chosen = next((m for m in modes
                   if (m["offload"], m["weights_dtype"]) == (auto_mode["offload"], auto_mode["weights_dtype"])), None)  # fmt: skip
    # No mode chosen (no GPU seen): the least the flags allow, so a 16 GB card is not told it needs 41 GiB.
    allowed = [m for m in modes if m["weights_dtype"] == cfg.weights_dtype and cfg.offload in ("auto", m["offload"])]
    least = min(allowed, key=lambda m: m["gpu_gib"], default=None)
    pick = chosen or least
    need = None if tiny else (pick["gpu_gib"] if pick else plan_dict["estimate"]["vram_gib"])
    host = None if tiny or chosen or least is None else least["host_gib"]
    gpu = readiness.gpu_item(cfg.device, need, tiny, mode=None if tiny else auto_mode, host_gib=host)
    disk = readiness.disk_item(readiness.RunWrites(cfg.out, cfg.resume_dir, cfg.frame_width, cfg.height, cfg.frames,
                                                   plan_dict["chunks"], cfg.dtype, extract_pose=cfg.pose_video is None))  # fmt: skip
    return [w, gpu, disk]


def _pose_need(cfg: RunConfig) -> tuple[str, ...]:
    """The weights part the pose model needs: none for wan (its files are checked by pose.choice), the
    "pose" part (RTMW) when that is what `run` would use or when neither model is there."""
    from animate_cli.errors import WeightsMissingError
    from animate_cli.pose.choice import choose_models

    try:
        return () if choose_models(cfg.pose_model, cfg.weights_dir, cfg.det_onnx, cfg.pose_onnx).model == "wan" else ("pose",)
    except WeightsMissingError:
        return ("pose",)

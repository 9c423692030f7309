"""What `run` prints on stderr: the dry-run plan, memory modes and readiness list, and a finished run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from animate_cli import config as C
from animate_cli.options import RunConfig
from animate_cli.progress import err_console
from animate_cli.runner.run_config import canvas_dict

if TYPE_CHECKING:
    from animate_cli.runner.pipeline import RunSummary


def print_dry_run(cfg: RunConfig, result: dict) -> None:
    """The plan, the memory modes and the readiness list of `run --dry-run` (result: Animator.plan's dict)."""
    plan = result["plan"]
    print_plan(cfg, plan)
    print_memory_modes({"modes": plan["memory_modes"], "auto_mode": plan["auto_mode"]})
    print_readiness(result["readiness"], result["exit_code"])


def print_plan(cfg: RunConfig, plan_dict: dict) -> None:
    from rich.table import Table

    con = err_console()
    est = plan_dict["estimate"]
    con.print(f"{cfg.frames} frames ({plan_dict['seconds']} s at {C.FPS} fps), {cfg.width}x{cfg.height}, "
              f"{plan_dict['chunks']} chunks x {cfg.steps} steps, seed {cfg.seed}", markup=False)  # fmt: skip
    con.print(f"latent per DiT call {tuple(plan_dict['latent_shape'])}, {plan_dict['tokens_per_call']} tokens", markup=False)
    cv = plan_dict.get("canvas") or canvas_dict(cfg)
    con.print(f"canvas {cv['size'][0]}x{cv['size'][1]}: {cv['rule']}; reference {cv['reference_fit']}, pose {cv['pose_fit']}",
              markup=False, highlight=False)  # fmt: skip
    mode = f"--offload {est['offload']} --weights-dtype {est['weights_dtype']}, {est.get('memory_mode_why', 'all resident')}"
    con.print(f"estimate: ~{est['vram_gib']} GiB VRAM ({mode}), ~{est['seconds_per_step']} s/step, ~{est['total_minutes']} min "
              f"({est['assumes']})", markup=False)  # fmt: skip
    table = Table("chunk", "output frames", "noise seed")
    rows = plan_dict["chunk_table"]
    for row in rows if len(rows) <= 12 else rows[:5] + [None] + rows[-5:]:
        if row is None:
            table.add_row("…", "…", "…")
        else:
            table.add_row(str(row["chunk"]), f"{row['out_frames'][0]}–{row['out_frames'][1] - 1}", str(row["seed"]))
    con.print(table)
    mg = plan_dict.get("multi_gpu")
    if mg:
        con.print(f"{mg['gpus']} GPUs: {mg['tokens_per_gpu']} tokens each, all-to-all {mg['all_to_all_gb_per_gpu']} GB per GPU "
                  f"per step (~{mg['all_to_all_ms']} ms), ~{mg['step_s']} s/step vs {mg['one_gpu_step_s']} s on one: "
                  f"predicted {mg['speedup']}x per DiT step of the 14B model ({mg['assumes']})", markup=False)  # fmt: skip


def print_memory_modes(report: dict) -> None:
    """The memory-mode table of --dry-run: predicted peak VRAM, host RAM, relative speed, and auto's pick."""
    from rich.table import Table

    con = err_console()
    table = Table("memory mode", "peak VRAM", "host RAM", "speed", "fits here", title="Wan2.2-Animate-14B memory modes")
    for m in report["modes"]:
        table.add_row(f"--offload {m['offload']} --weights-dtype {m['weights_dtype']}", f"{m['gpu_gib']:.1f} GiB",
                      f"{m['host_gib']:.1f} GiB", f"{m['relative_speed']:.2f}x", "yes" if m["fits"] else "no")  # fmt: skip
    con.print(table)
    auto, gpu = report["auto_mode"], report["auto_mode"]["gpu"]
    host = auto["host_available_gib"]
    have = (f"{gpu['name']} (cuda index {gpu['index']}, {gpu['free_gib']:.1f} of {gpu['total_gib']:.1f} GiB free)" if gpu
            else "no GPU") + (f", {host:.1f} GiB host RAM available" if host is not None else "")  # fmt: skip
    con.print(f"this machine: {have}", markup=False)
    con.print(f"auto: {auto['reason']}", markup=False)


def print_readiness(items: list[dict], code: int) -> None:
    """One line per readiness item (runner/readiness.Item.to_dict), with its fix or note."""
    con = err_console()
    con.print("ready to run: yes" if code == 0 else f"ready to run: no (a real run would exit {code})", markup=False)
    for item in items:
        con.print(f"  {'ok ' if item['ok'] else 'NO '} {item['name']:<8} {item['message']}", markup=False)
        if item["fix"]:
            con.print(f"  {'':3} {'':<8} {'fix' if not item['ok'] else 'note'}: {item['fix']}", markup=False)


def print_summary(cfg: RunConfig, summary: RunSummary, result: dict) -> None:
    """The lines a finished run prints: what was written, the memory mode's measured peak, the runtime settings."""
    from animate_cli.weights import manifest

    con = err_console()
    con.print(f"wrote {summary.output} ({summary.frames} frames, {summary.duration_s:.2f} s, "
              f"{summary.size[0]}x{summary.size[1]}, reference {cfg.fit}) in {summary.timings_s.get('total', 0):.1f} s; "
              f"weights: {manifest.short(result['weights'])}"
              + (f"; pose by {summary.pose['model']}" if summary.pose.get("model") else ""), markup=False)  # fmt: skip
    mm = summary.memory_mode
    if mm.get("measured_peak_gpu_gib") is not None:
        pred = f" (predicted {mm['predicted_gpu_gib']:.1f} GiB with margins)" if mm.get("predicted_gpu_gib") else ""
        con.print(f"memory mode {mm['offload']}/{mm['weights_dtype']}: peak {mm['measured_peak_gpu_gib']:.1f} GiB "
                  f"allocated on the GPU{pred}", markup=False)  # fmt: skip
    if summary.report.get("json"):
        from animate_cli.cli.inspect import summary_line

        con.print(f"report {summary.report['png']}: {summary_line(summary.report)}", markup=False)
    if summary.runtime:
        rt = summary.runtime
        compiled = f"on ({rt['compile_s']} s compiling)" if rt["compile"] else "off"
        con.print(f"models: offload {rt['offload']}, weights {rt['weights_dtype']}, attention "
                  f"{rt['attention']}, compile {compiled}", markup=False)  # fmt: skip

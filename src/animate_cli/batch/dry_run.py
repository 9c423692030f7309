"""`batch JOBS --dry-run`: every job planned as `run --dry-run` plans it (Animator.plan: no model, no torch),
the totals (frames, chunks, predicted GPU time), and readiness checked once for the whole list: weights and
GPU as for one job, disk space for every output and state folder together, per filesystem."""

from __future__ import annotations

import shutil

from animate_cli.batch.jobs import Job, JobList, state_folder
from animate_cli.batch.worker import finished
from animate_cli.errors import EverAnimateError, ExitCode


def plan_all(job_list: JobList, model_options: dict) -> dict:
    """{"jobs": [per job: line, out, status (planned | made | blocked | invalid), frames, chunks, gpu_minutes,
    exit_code, message], "totals": {...}, "ready", "readiness": [items as dicts], "exit_code"} (the first blocked
    job's code, else the first readiness blocker's, else 0)."""
    from animate_cli.runner.animator import Animator

    animator = Animator(**model_options)  # loads nothing until a run
    entries, plans = [], []
    for job in job_list.jobs:
        entry = {"line": job.line, "out": str(job.out)}
        if finished(job, animator):
            entries.append({**entry, "status": "made", "exit_code": 0})
            continue
        try:
            report = animator.plan(job.ref, job.driving, job.out, **job.options)
        except EverAnimateError as e:
            entries.append({**entry, "status": "blocked", "exit_code": int(e.exit_code), "message": e.message})
            continue
        plan = report["plan"]
        gpu_min = plan.get("estimate", {}).get("total_minutes")
        entries.append({**entry, "status": "planned", "frames": plan["frames"], "chunks": plan["chunks"],
                        "size": plan["size"], "gpu_minutes": gpu_min, "exit_code": 0})  # fmt: skip
        plans.append((job, plan, report))
    for bad in job_list.invalid:
        entries.append(
            {"line": bad.line, "out": bad.out, "status": "invalid", "exit_code": int(ExitCode.USAGE), "message": bad.message}
        )
    entries.sort(key=lambda e: e["line"])
    planned = [e for e in entries if e["status"] == "planned"]
    totals = {"jobs": len(planned), "frames": sum(e["frames"] for e in planned), "chunks": sum(e["chunks"] for e in planned),
              "gpu_minutes": round(sum(e["gpu_minutes"] or 0.0 for e in planned), 1)}  # fmt: skip
    items = _readiness(plans, model_options)
    blocked = next((e["exit_code"] for e in entries if e["status"] == "blocked"), None)
    blocker = next((i["exit_code"] for i in items if i["status"] != "ok"), None)
    code = int(blocked or blocker or 0)
    return {"jobs": entries, "totals": totals, "ready": code == 0, "readiness": items, "exit_code": code}


def _readiness(plans: list[tuple[Job, dict, dict]], model_options: dict) -> list[dict]:
    """Weights and GPU from the first planned job (every job loads the same models), disk for all of them."""
    if not plans:
        return []
    report = plans[0][2]
    first = report.get("readiness") or [i.to_dict() for i in report.get("items", ())]
    items = [i for i in first if i.get("name") != "disk"]
    return [*items, _disk(plans, model_options)]


def _disk(plans: list[tuple[Job, dict, dict]], model_options: dict) -> dict:
    """Every output (+ preview) and state folder of the list, summed per filesystem, against its free space."""
    from animate_cli.runner import readiness

    dtype = model_options.get("dtype") or "bf16"
    total: dict[int, list] = {}
    for job, plan, _ in plans:
        width, height = plan["size"]
        width *= 2 if job.options.get("side_by_side") else 1
        writes = readiness.RunWrites(job.out, state_folder(job), width, height, plan["frames"], plan["chunks"], dtype,
                                     job.options.get("pose_video") is None)  # fmt: skip
        needs = readiness.disk_needs(writes)
        for dev, need in needs.items():
            slot = total.setdefault(dev, [need.path, 0])
            slot[1] += need.bytes
    lines, ok = [], True
    for path, need in total.values():
        need, have = int(need * readiness.DISK_MARGIN), shutil.disk_usage(path).free
        ok &= have >= need
        lines.append(f"~{_gb(need)} needed, {_gb(have)} free on {path}")
    message = f"all {len(plans)} jobs: " + "; ".join(lines)
    item = readiness.Item("disk", ok, message, None if ok else "free some space, or put the outputs on a larger disk",
                          0 if ok else int(ExitCode.WRITE))  # fmt: skip
    return item.to_dict()


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"

"""Running a whole `everanimate run`: the orchestrator, the readiness list, the background pose job, per-stage timings and the --gpus launcher."""

"""Context parallelism (issue 9) on the CPU: real processes on the gloo backend, loopback only.

- The face adapter's attention on token shards equals the full-sequence op, also when a shard starts
  inside a latent frame (N = 5), and the stock processor on a shard does not (the reason it is replaced).
- `everanimate run --gpus 2 --device cpu` (two ranks, the real sharded DiT path through diffusers'
  `enable_parallelism`), interrupted with Ctrl-C (all ranks end, exit 130) and resumed, gives the same
  latents and decoded frames as a one-process run.
- N that does not divide the heads is a usage error; an error on rank 1 ends both ranks with rank 1's
  message and exit code; `--dry-run --gpus N` prints the prediction without importing torch.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SIZE, make_cfg
from support.tiny_models import TRANSFORMER_CONFIG
from typer.testing import CliRunner

from animate_cli.cli import app
from animate_cli.models import parallel
from animate_cli.runner import multigpu, pipeline

ENV = {**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}


STEPS = 8  # enough DiT calls per chunk that Ctrl-C right after chunk 0 lands inside the run


def _args(media_dir: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--pose-video", str(media_dir / "pose.mp4"),
            "--face-video", str(media_dir / "face.mp4"), "--frames", "160", "--size", f"{SIZE[0]}x{SIZE[1]}", "--steps", str(STEPS),
            "--device", "cpu", "--dtype", "fp32", "--weights-dir", str(weights), "--out", str(out), *extra]  # fmt: skip


# --- the face adapter on shards (pure computation, no process group needed) ----------------------


@pytest.mark.parametrize("shards", [2, 5, 8])
def test_face_attention_on_shards_equals_full_sequence(shards):
    from diffusers import WanAnimateTransformer3DModel
    from diffusers.models.transformers.transformer_wan_animate import WanAnimateFaceBlockAttnProcessor

    torch.manual_seed(0)
    block = WanAnimateTransformer3DModel(**TRANSFORMER_CONFIG).face_adapter[0].eval()
    frames, hw, dim = 24, 10, block.inner_dim  # 240 tokens: 2 and 8 shards hold whole frames, 5 shards do not
    x = torch.randn(1, frames * hw, dim)
    motion = torch.randn(1, frames, 3, dim)
    with torch.no_grad():
        full = WanAnimateFaceBlockAttnProcessor()(block, x, motion)
        pieces = x.chunk(shards, dim=1)
        ours = torch.cat([parallel.face_attention(block, p, motion, r, shards) for r, p in enumerate(pieces)], dim=1)
        n0 = pieces[0].shape[1]
        stock0 = WanAnimateFaceBlockAttnProcessor()(block, pieces[0], motion) if n0 % frames == 0 else None
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-6)
    if stock0 is not None:  # the stock op on a shard spreads its tokens over all 24 frames' motion: wrong
        assert (stock0 - full[:, :n0]).abs().max() > 1e-3


# --- one video on two CPU ranks ------------------------------------------------------------------


def _latents(out: Path, c: int):
    from animate_cli.rollout.resume import load_chunk_latents

    return load_chunk_latents(out.with_name(out.name + ".everanimate-state"), c)


def test_two_ranks_match_one_process_through_ctrl_c_and_resume(tiny_weights, media_dir, tmp_path):
    """160 frames (3 chunks) on one process vs on two gloo ranks that are interrupted (Ctrl-C to the
    launcher) after chunk 0 and then resumed: same latents, same decoded frames."""
    from diffusers import AutoencoderKLWan

    from animate_cli.models import load_component
    from animate_cli.rollout.decode import iter_decode_frames

    one = tmp_path / "one.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, one, steps=STEPS))

    two = tmp_path / "two.mp4"
    launcher = subprocess.Popen([sys.executable, "-m", "animate_cli", *_args(media_dir, tiny_weights, two, "--gpus", "2", "--frames", "3000")],
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    state = two.with_name(two.name + ".everanimate-state") / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    launcher.send_signal(signal.SIGINT)  # what the terminal sends the launcher on Ctrl-C
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 130, err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == ["error: interrupted"], err  # rank 0 alone says it
    assert subprocess.run(["pgrep", "-f", str(two)], capture_output=True).stdout == b"", "a rank outlived the launcher"

    proc = subprocess.run([sys.executable, "-m", "animate_cli", *_args(media_dir, tiny_weights, two, "--gpus", "2", "--json")],
                          capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # rank 0 alone prints: exactly one JSON object
    assert summary["ok"] and summary["chunks"] == 3 and summary["resumed_from_chunk"] >= 1

    vae = load_component(AutoencoderKLWan, tiny_weights / "wan2.2-animate-14b", "vae", torch_dtype=torch.float32).eval()
    for c in range(3):
        a, b = _latents(one, c), _latents(two, c)
        # fp32 round-off at most (sharded matmuls may sum in another order); on the tiny model it is 0
        assert (a - b).abs().max() <= 1e-5 * a.abs().max(), c
        fa = np.stack(list(iter_decode_frames(vae, a)))
        fb = np.stack(list(iter_decode_frames(vae, b)))
        assert fa.std() > 1.0 and np.abs(fa.astype(int) - fb).max() <= 1  # within 1 grey level before H.264


# --- which N, and what they are predicted to give ------------------------------------------------


def test_gpus_that_do_not_divide_the_heads_are_a_usage_error(tiny_weights, media_dir, tmp_path):
    r = CliRunner().invoke(
        app, _args(media_dir, tiny_weights, tmp_path / "o.mp4", "--gpus", "3", "--dry-run"), env={"COLUMNS": "300"}
    )
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines[0] == "error: 3 GPUs cannot split the model's 2 attention heads evenly; use one of: 1, 2"
    with pytest.raises(Exception, match="use one of: 1, 2, 4, 5, 8, 10, 20, 40"):
        multigpu.check_degree(3, 40, 37440)
    with pytest.raises(Exception, match="cannot split the 144 tokens"):
        multigpu.check_degree(5, 40, 144)  # --size 48x32: 24 x 2 x 3 tokens
    for n in (2, 4, 5, 8, 10):  # every useful N splits 480p and 720p, landscape or portrait
        multigpu.check_degree(n, 40, 37440)
        multigpu.check_degree(n, 40, 86400)


def test_gpus_with_block_offload_are_refused(tiny_weights, media_dir, tmp_path):
    """Context parallelism keeps the whole DiT on every GPU; --offload blocks is not shown to compose with it."""
    args = _args(media_dir, tiny_weights, tmp_path / "o.mp4", "--gpus", "2", "--offload", "blocks", "--dry-run")
    r = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert r.exit_code == 2
    assert r.output.splitlines()[0].startswith("error: --offload blocks with 2 GPUs: context parallelism keeps the whole DiT")
    assert "Traceback" not in r.output
    r = CliRunner().invoke(app, [*args[:-3], "--dry-run"], env={"COLUMNS": "300"})  # --offload auto under CP: resident
    assert r.exit_code == 0, r.output
    assert "--offload blocks with" not in r.output


def test_prediction_model():
    p8 = multigpu.predict(37440, 8)
    # Ulysses: 4 all-to-alls of [4680, 5120] bf16 per block, 7/8 of it leaves the GPU, 40 blocks
    assert p8["all_to_all_gb_per_gpu"] == pytest.approx(40 * 4 * 4680 * 5120 * 2 * 7 / 8 / 1e9, rel=1e-3)
    assert p8["speedup"] >= 6.5  # the target, on paper
    assert multigpu.predict(37440, 1)["speedup"] == 1.0
    assert multigpu.predict(86400, 8)["speedup"] > p8["speedup"]  # more tokens: communication matters less


def test_dry_run_prints_the_prediction_without_torch(tiny_weights, media_dir, tmp_path):
    code = ("import sys; from animate_cli.cli import main; sys.argv = ['everanimate', *sys.argv[1:]]\n"
            "try: main()\nexcept SystemExit as e: assert 'torch' not in sys.modules, 'torch imported'; raise")  # fmt: skip
    args = _args(media_dir, tiny_weights, tmp_path / "o.mp4", "--gpus", "2", "--dry-run", "--json")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    mg = json.loads(proc.stdout)["plan"]["multi_gpu"]
    assert mg["gpus"] == 2 and mg["tokens_per_gpu"] == mg["tokens"] // 2 and mg["speedup"] > 1


# --- errors and Ctrl-C end every rank ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_error_on_rank_1_ends_both_ranks_with_its_message(tiny_weights, media_dir, tmp_path):
    """Rank 1 (as on a second machine) has no weights: both ranks exit 4, rank 0 prints rank 1's line once."""
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    empty = tmp_path / "no-weights"
    empty.mkdir()
    procs = []
    for rank, weights in ((0, tiny_weights), (1, empty)):
        cmd = [sys.executable, "-m", "animate_cli", *_args(media_dir, weights, tmp_path / "o.mp4")]
        procs.append(subprocess.Popen(cmd, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [4, 4], outs
    errors = [ln for ln in outs[0][1].splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: rank 1: missing") and str(empty) in errors[0]
    assert "error:" not in outs[1][1] and "Traceback" not in outs[0][1] + outs[1][1]

"""The chunk schedule (spec §1): counts, kept frames, ping-pong indices, seeds, sizes."""

import pytest

from animate_cli import config as C
from animate_cli.rollout.plan import make_plan, num_chunks_for, pingpong


@pytest.mark.parametrize("frames,chunks", [(1, 1), (77, 1), (78, 2), (150, 2), (151, 3), (734, 10), (3000, 42)])
def test_chunk_count_covers_exactly(frames, chunks):
    assert num_chunks_for(frames) == chunks
    plan = make_plan(frames, 832, 480, source_frames=100)
    assert len(plan.chunks) == chunks
    assert sum(c.keep for c in plan.chunks) == frames


def test_chunks_tile_the_output_without_gaps_or_overlap():
    plan = make_plan(734, 832, 480, source_frames=1000)
    covered = []
    for c in plan.chunks:
        assert c.start == 73 * c.index
        assert c.drop == (0 if c.index == 0 else 4)
        covered.extend(range(c.out_start, c.out_start + c.keep))
    assert covered == list(range(734))
    assert [c.seed for c in plan.chunks[:3]] == [0, 42, 84]  # the official script's seeds for --seed 0


def test_seed_offsets_per_chunk():
    assert [c.seed for c in make_plan(300, 832, 480, 300, seed=7).chunks] == [7, 49, 91, 133, 175][: num_chunks_for(300)]


def test_pingpong_bounces_without_repeating_ends():
    assert [pingpong(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [pingpong(i, 1) for i in range(3)] == [0, 0, 0]
    plan = make_plan(150, 832, 480, source_frames=40)
    assert plan.chunks[1].driving[:5] == tuple(pingpong(73 + i, 40) for i in range(5))
    assert max(max(c.driving) for c in plan.chunks) == 39


def test_latent_layout_numbers():
    plan = make_plan(77, 832, 480, 77)
    assert plan.latent_shape() == (1, 16, 24, 60, 104)
    assert plan.tokens_per_call == 37_440  # 24 slots x 30 x 52
    assert C.LATENT_SLOTS == 24 and C.GENERATED_LATENTS == 20
    est = plan.to_dict()["estimate"]
    assert 1.5 < est["dit_tflop_per_step"] / 1000 < 3.0  # ~2.1 PFLOP per step at 480p (issue 5)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError):
        make_plan(10, 830, 480, 10)
    with pytest.raises(ValueError):
        make_plan(0, 832, 480, 10)

"""Stand-in LoRA files in each real key layout (names from the real files' public listings and loaders, cited in
docs/loras.md), shapes scaled to a tiny model, and what each tensor must do to the model -- written here by hand,
independently of models/lora.py's mapping.

`standin(layout, shapes)` -> (state dict to save, [Expect]). `shapes` is the model's {tensor name: shape}; a
module the model lacks (the tiny test model has no image K/V projection) is left out of the stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Wan original module -> diffusers module, per block (diffusers' conversion table, docs/loras.md)
BLOCK_LINEARS = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "cross_attn.k_img": "attn2.add_k_proj", "cross_attn.v_img": "attn2.add_v_proj", "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}  # fmt: skip
# whole-weight deltas (`.diff`) of the block norms; Wan's norm3 (the affine cross-attention norm) is diffusers' norm2
BLOCK_NORMS = {"self_attn.norm_q": "attn1.norm_q", "self_attn.norm_k": "attn1.norm_k", "cross_attn.norm_q": "attn2.norm_q",
               "cross_attn.norm_k": "attn2.norm_k", "cross_attn.norm_k_img": "attn2.norm_added_k", "norm3": "norm2"}  # fmt: skip
OUTER_LINEARS = {
    "head.head": "proj_out",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1", "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1", "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
}  # fmt: skip
OUTER_NORMS = {
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
}
# Animate's face adapter (names of the Wan2.2-Animate-14B checkpoint itself; linear1_kv is split into to_k | to_v)
FACE_LINEARS = {"linear1_q": "to_q", "linear2": "to_out"}
FACE_NORMS = {"q_norm": "norm_q", "k_norm": "norm_k"}
LAYOUTS = ("lightx2v", "comfy", "kohya", "peft", "official", "animate")


@dataclass(frozen=True)
class Expect:
    """W_target += scale * factor * (B @ A)  (kind "lora"; `rows` slices B when one file module feeds two
    tensors), or W_target += scale * delta  (kind "diff")."""

    target: str
    kind: str
    b: torch.Tensor
    a: torch.Tensor | None = None
    factor: float = 1.0
    rows: slice | None = None


class _Writer:
    def __init__(self, shapes: dict, rank: int, seed: int):
        self.shapes, self.rank = shapes, rank
        self.gen = torch.Generator().manual_seed(seed)
        self.state: dict[str, torch.Tensor] = {}
        self.expect: list[Expect] = []

    def rand(self, *shape) -> torch.Tensor:
        return (torch.randn(*shape, generator=self.gen) * 0.1).to(torch.bfloat16)

    def lora(self, names: tuple[str, str], target: str, alpha: float | None = None, out_rows: int | None = None):
        """names: (A key, B key); the target weight's shape gives the factors' shapes."""
        out, inp = self.shapes[f"{target}.weight"]
        out = out_rows or out
        a, b = self.rand(self.rank, inp), self.rand(out, self.rank)
        self.state[names[0]], self.state[names[1]] = a, b
        factor = 1.0
        if alpha is not None:
            self.state[names[0].rsplit(".", 2)[0] + ".alpha"] = torch.tensor(alpha)
            factor = alpha / self.rank
        self.expect.append(Expect(f"{target}.weight", "lora", b, a, factor))
        return a, b, factor

    def diff(self, key: str, target: str):
        d = self.rand(*self.shapes[target])
        self.state[key] = d
        self.expect.append(Expect(target, "diff", d))


def standin(layout: str, shapes: dict, rank: int = 4, seed: int = 0) -> tuple[dict, list[Expect]]:
    w = _Writer(shapes, rank, seed)
    blocks = sorted({int(n.split(".")[1]) for n in shapes if n.startswith("blocks.")})
    has = lambda target: f"{target}.weight" in shapes  # noqa: E731
    for i in blocks:
        for orig, diff in BLOCK_LINEARS.items():
            target = f"blocks.{i}.{diff}"
            if not has(target):
                continue
            if layout == "lightx2v":  # lora_down/up (no alpha) + the bias delta
                w.lora(
                    (f"diffusion_model.blocks.{i}.{orig}.lora_down.weight", f"diffusion_model.blocks.{i}.{orig}.lora_up.weight"),
                    target,
                )
                w.diff(f"diffusion_model.blocks.{i}.{orig}.diff_b", f"{target}.bias")
            elif layout == "comfy":
                w.lora((f"diffusion_model.blocks.{i}.{orig}.lora_down.weight", f"diffusion_model.blocks.{i}.{orig}.lora_up.weight"),
                       target, alpha=2.0)  # fmt: skip
            elif layout == "kohya":  # musubi-tuner / kohya: dots written as underscores
                stem = f"lora_unet_blocks_{i}_{orig.replace('.', '_')}"
                w.lora((f"{stem}.lora_down.weight", f"{stem}.lora_up.weight"), target, alpha=2.0)
            elif layout == "peft":
                w.lora((f"transformer.{target}.lora_A.weight", f"transformer.{target}.lora_B.weight"), target)
            elif layout == "official" and not orig.endswith("_img"):
                w.lora((f"blocks.{i}.{orig}.lora_A.default.weight", f"blocks.{i}.{orig}.lora_B.default.weight"), target)
        if layout == "lightx2v":
            for orig, diff in BLOCK_NORMS.items():
                if has(f"blocks.{i}.{diff}"):
                    w.diff(f"diffusion_model.blocks.{i}.{orig}.diff", f"blocks.{i}.{diff}.weight")
            w.diff(f"diffusion_model.blocks.{i}.norm3.diff_b", f"blocks.{i}.norm2.bias")
            w.diff(f"diffusion_model.blocks.{i}.diff_m", f"blocks.{i}.scale_shift_table")
    if layout == "lightx2v":
        for orig, diff in OUTER_LINEARS.items():
            w.lora((f"diffusion_model.{orig}.lora_down.weight", f"diffusion_model.{orig}.lora_up.weight"), diff)
            w.diff(f"diffusion_model.{orig}.diff_b", f"{diff}.bias")
        for orig, diff in OUTER_NORMS.items():
            w.diff(f"diffusion_model.{orig}.diff", f"{diff}.weight")
            w.diff(f"diffusion_model.{orig}.diff_b", f"{diff}.bias")
    if layout == "animate":
        _face_adapter(w, shapes)
    return w.state, w.expect


def _face_adapter(w: _Writer, shapes: dict) -> None:
    """Animate-only modules: the face adapter's Linears (linear1_kv feeds to_k and to_v) and its q/k norms."""
    adapters = sorted({int(n.split(".")[1]) for n in shapes if n.startswith("face_adapter.")})
    for j in adapters:
        src, dst = f"diffusion_model.face_adapter.fuser_blocks.{j}", f"face_adapter.{j}"
        for orig, diff in FACE_LINEARS.items():
            w.lora((f"{src}.{orig}.lora_down.weight", f"{src}.{orig}.lora_up.weight"), f"{dst}.{diff}")
        out = shapes[f"{dst}.to_k.weight"][0]
        a, b, _ = w.lora(
            (f"{src}.linear1_kv.lora_down.weight", f"{src}.linear1_kv.lora_up.weight"), f"{dst}.to_k", out_rows=2 * out
        )
        w.expect[-1] = Expect(f"{dst}.to_k.weight", "lora", b, a, rows=slice(0, out))
        w.expect.append(Expect(f"{dst}.to_v.weight", "lora", b, a, rows=slice(out, 2 * out)))
        for orig, diff in FACE_NORMS.items():
            w.diff(f"{src}.{orig}.diff", f"{dst}.{diff}.weight")


def expected_weights(before: dict, expect: list[Expect], scale: float) -> dict:
    """The independent formula, in fp64: W + scale*(alpha/r)*B@A, W + scale*diff, b + scale*diff_b."""
    out = {k: v.double().clone() for k, v in before.items()}
    for e in expect:
        if e.kind == "lora":
            b = e.b.double()[e.rows] if e.rows is not None else e.b.double()
            out[e.target] += scale * e.factor * (b @ e.a.double())
        else:
            out[e.target] += scale * e.b.double().reshape(out[e.target].shape)
    return out

#!/usr/bin/env python3
"""Writes the tiny UNet fixture of tests/unet/data: a config with both cross-attention and plain blocks,
random weights under diffusers' names, and golden inputs and outputs computed in float64 by the
independent PyTorch UNet of sd_unet_torch.py.

    python3 bench/make_unet_fixture.py tests/unet/data      # needs torch (Debian: python3-torch)

Files: tiny_unet_config.json, tiny_unet.safetensors (F32 weights), tiny_unet_reference.safetensors
(sample [2, 4, 8, 8], timesteps [2], encoder_hidden_states [2, 5, 16], output [2, 4, 8, 8]); and the
same three for tiny_unet_variant, which turns on the options SD 1.5 leaves off (linear projections as in
SD 2, two transformer layers per block, freq_shift 1, sin before cos, other channel counts).
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_unet_torch  # noqa: E402

CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": [2, 4],
    "block_out_channels": [32, 64],
    "center_input_sample": False,
    "cross_attention_dim": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 8,
    "out_channels": 4,
    "sample_size": 8,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}

VARIANT = dict(CONFIG, **{
    "attention_head_dim": 2,
    "block_out_channels": [16, 32, 32],
    "cross_attention_dim": 12,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "out_channels": 2,
    "norm_num_groups": 4,
    "transformer_layers_per_block": 2,
    "use_linear_projection": True,
})


def write_safetensors(path, tensors):
    """SafeTensors by hand (header JSON padded to 8 bytes, then little-endian F32 data)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def randomize(model, generator):
    """Weights large enough that every block changes the output: N(0, 1/fan_in) for matrices and
    kernels, norms near 1, small biases."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() == 1 and "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) / fan_in ** 0.5)


def write_fixture(out_dir, stem, config, sample_shape, context_shape, seed):
    generator = torch.Generator().manual_seed(seed)
    model = sd_unet_torch.UNet2DConditionModel(config).double().eval()
    randomize(model, generator)
    # Round the weights to f32 first so the golden output is exactly what the f32 weights give.
    weights = {k: v.float() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.double() for k, v in weights.items()})

    sample = torch.randn(*sample_shape, generator=generator, dtype=torch.float64).float()
    timesteps = torch.tensor([981.0, 17.0])
    context = torch.randn(*context_shape, generator=generator, dtype=torch.float64).float()
    with torch.no_grad():
        output = model(sample.double(), timesteps.double(), context.double())

    with open(os.path.join(out_dir, stem + "_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out_dir, stem + ".safetensors"), weights)
    write_safetensors(os.path.join(out_dir, stem + "_reference.safetensors"), {
        "sample": sample, "timesteps": timesteps, "encoder_hidden_states": context, "output": output.float()})
    print(f"{stem}: {len(weights)} tensors, {sum(v.numel() for v in weights.values())} parameters; "
          f"output rms {output.pow(2).mean().sqrt().item():.4f}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/unet/data"
    write_fixture(out_dir, "tiny_unet", CONFIG, (2, 4, 8, 8), (2, 5, 16), 13)
    write_fixture(out_dir, "tiny_unet_variant", VARIANT, (2, 3, 8, 12), (2, 3, 12), 14)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the parameter manifest (every state-dict name and shape) of a diffusers UNet2DConditionModel
config, the way diffusers' constructors create the modules (unets/unet_2d_condition.py, unets/
unet_2d_blocks.py, resnet.py, transformers/transformer_2d.py, attention.py, attention_processor.py,
embeddings.py), without importing diffusers or running the C++ code.

    python3 bench/sd_unet_manifest.py > tests/unet/data/sd15_unet_manifest.txt        # SD 1.5
    python3 bench/sd_unet_manifest.py --config unet/config.json

Each line: the name, then the shape's dims separated by spaces. The manifest is in diffusers'
registration order (a block's attentions before its resnets, up_blocks before mid_block).
"""
import argparse
import json
import sys

SD15 = {
    "in_channels": 4, "out_channels": 4, "sample_size": 64,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "norm_num_groups": 32,
    "cross_attention_dim": 768, "attention_head_dim": 8, "use_linear_projection": False,
}


def manifest(cfg):
    out = []

    def param(name, *shape):
        out.append((name, list(shape)))

    def linear(p, fan_in, fan_out, bias=True):
        param(p + ".weight", fan_out, fan_in)
        if bias:
            param(p + ".bias", fan_out)

    def conv(p, cin, cout, k):
        param(p + ".weight", cout, cin, k, k)
        param(p + ".bias", cout)

    def norm(p, c):  # GroupNorm and LayerNorm (affine)
        param(p + ".weight", c)
        param(p + ".bias", c)

    def resnet(p, cin, cout, temb):  # ResnetBlock2D: norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut
        norm(p + ".norm1", cin)
        conv(p + ".conv1", cin, cout, 3)
        linear(p + ".time_emb_proj", temb, cout)
        norm(p + ".norm2", cout)
        conv(p + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(p + ".conv_shortcut", cin, cout, 1)

    def attention(p, query_dim, context_dim, inner):  # Attention: to_q, to_k, to_v (no bias), to_out.0
        linear(p + ".to_q", query_dim, inner, bias=False)
        linear(p + ".to_k", context_dim, inner, bias=False)
        linear(p + ".to_v", context_dim, inner, bias=False)
        linear(p + ".to_out.0", inner, query_dim)

    def transformer(p, channels, heads):  # Transformer2DModel; inner_dim = heads * (channels // heads)
        inner = heads * (channels // heads)
        norm(p + ".norm", channels)
        if cfg.get("use_linear_projection"):
            linear(p + ".proj_in", channels, inner)
        else:
            conv(p + ".proj_in", channels, inner, 1)
        for d in range(cfg.get("transformer_layers_per_block", 1)):
            b = f"{p}.transformer_blocks.{d}"
            norm(b + ".norm1", inner)
            attention(b + ".attn1", inner, inner, inner)
            norm(b + ".norm2", inner)
            attention(b + ".attn2", inner, cfg["cross_attention_dim"], inner)
            norm(b + ".norm3", inner)
            linear(b + ".ff.net.0.proj", inner, inner * 4 * 2)  # GEGLU projects to 2 × 4·dim
            linear(b + ".ff.net.2", inner * 4, inner)
        if cfg.get("use_linear_projection"):
            linear(p + ".proj_out", inner, channels)
        else:
            conv(p + ".proj_out", inner, channels, 1)

    boc = cfg["block_out_channels"]
    n = len(boc)
    heads = cfg["attention_head_dim"]
    heads = heads if isinstance(heads, list) else [heads] * n
    temb = boc[0] * 4
    layers = cfg["layers_per_block"]
    groups_unused = cfg["norm_num_groups"]  # shapes do not depend on it
    del groups_unused

    conv("conv_in", cfg["in_channels"], boc[0], 3)
    linear("time_embedding.linear_1", boc[0], temb)
    linear("time_embedding.linear_2", temb, temb)

    output_channel = boc[0]
    for i, kind in enumerate(cfg["down_block_types"]):
        input_channel, output_channel = output_channel, boc[i]
        p = f"down_blocks.{i}"
        if kind == "CrossAttnDownBlock2D":
            for j in range(layers):
                transformer(f"{p}.attentions.{j}", output_channel, heads[i])
        for j in range(layers):
            resnet(f"{p}.resnets.{j}", input_channel if j == 0 else output_channel, output_channel, temb)
        if i != n - 1:
            conv(f"{p}.downsamplers.0.conv", output_channel, output_channel, 3)

    reversed_boc = list(reversed(boc))
    reversed_heads = list(reversed(heads))
    output_channel = reversed_boc[0]
    for i, kind in enumerate(cfg["up_block_types"]):
        prev_output_channel = output_channel
        output_channel = reversed_boc[i]
        input_channel = reversed_boc[min(i + 1, n - 1)]
        p = f"up_blocks.{i}"
        count = layers + 1
        if kind == "CrossAttnUpBlock2D":
            for j in range(count):
                transformer(f"{p}.attentions.{j}", output_channel, reversed_heads[i])
        for j in range(count):
            skip = input_channel if j == count - 1 else output_channel
            cin = prev_output_channel if j == 0 else output_channel
            resnet(f"{p}.resnets.{j}", cin + skip, output_channel, temb)
        if i != n - 1:
            conv(f"{p}.upsamplers.0.conv", output_channel, output_channel, 3)

    transformer("mid_block.attentions.0", boc[-1], heads[-1])
    resnet("mid_block.resnets.0", boc[-1], boc[-1], temb)
    resnet("mid_block.resnets.1", boc[-1], boc[-1], temb)

    norm("conv_norm_out", boc[0])
    conv("conv_out", boc[0], cfg["out_channels"], 3)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a diffusers unet/config.json (default: Stable Diffusion 1.5)")
    args = parser.parse_args()
    cfg = SD15
    if args.config:
        with open(args.config) as f:
            cfg = json.load(f)
    rows = manifest(cfg)
    total = 0
    for _, shape in rows:
        count = 1
        for d in shape:
            count *= d
        total += count
    out = sys.stdout
    out.write("# Parameters of the Stable Diffusion 1.5 UNet2DConditionModel as diffusers names them, written by\n")
    out.write("# bench/sd_unet_manifest.py from diffusers' module constructors. One line each: name, then dims.\n")
    out.write(f"# {len(rows)} tensors, {total} parameters.\n")
    for name, shape in rows:
        out.write(name + " " + " ".join(str(d) for d in shape) + "\n")


if __name__ == "__main__":
    main()

"""An independent PyTorch UNet2DConditionModel (Stable Diffusion 1.x/2.x layout), written from diffusers'
source as plain torch.nn modules whose state-dict names are diffusers' own, so a diffusers checkpoint
loads with load_state_dict and our safetensors files load into it. No diffusers import.

Used on the CPU (Debian's python3-torch) by make_unet_fixture.py for golden outputs, and on the GPU by
torch_sd_unet.py for the benchmark's PyTorch side.

    cfg = json.load(open("tests/unet/data/tiny_unet_config.json"))
    unet = UNet2DConditionModel(cfg)
    out = unet(sample, timesteps, encoder_hidden_states)   # [B, C, H, W], [B], [B, S, D]
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps, dim, flip_sin_to_cos, freq_shift):
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(exponent / (half - freq_shift))
    angles = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, channels, dim):
        super().__init__()
        self.linear_1 = nn.Linear(channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, query_dim, context_dim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x, context=None):
        context = x if context is None else context
        b = x.shape[0]

        def split(t):
            return t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0: the fused kernels
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        o = o.transpose(1, 2).reshape(b, -1, q.shape[1] * q.shape[3])
        return self.to_out[0](o)


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, context_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim, heads, head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, channels, heads, groups, context_dim, depth, linear_projection):
        super().__init__()
        inner = heads * (channels // heads)
        self.linear_projection = linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if linear_projection else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, channels // heads, context_dim) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, channels) if linear_projection else nn.Conv2d(inner, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        t = self.norm(x)
        if self.linear_projection:
            t = self.proj_in(t.permute(0, 2, 3, 1).reshape(b, h * w, c))
        else:
            t = self.proj_in(t)
            t = t.permute(0, 2, 3, 1).reshape(b, h * w, t.shape[1])
        for block in self.transformer_blocks:
            t = block(t, context)
        if self.linear_projection:
            t = self.proj_out(t).reshape(b, h, w, c).permute(0, 3, 1, 2)
        else:
            t = self.proj_out(t.reshape(b, h, w, t.shape[-1]).permute(0, 3, 1, 2))
        return t + x


class Downsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    """A down, mid or up block: attentions (optional), resnets and a resampler, diffusers' names."""

    def __init__(self, resnets, attentions, downsample=None, upsample=None):
        super().__init__()
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        if downsample is not None:
            self.downsamplers = nn.ModuleList([downsample])
        if upsample is not None:
            self.upsamplers = nn.ModuleList([upsample])

    def attention(self, j):
        return self.attentions[j] if hasattr(self, "attentions") else None


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc = cfg["block_out_channels"]
        n = len(boc)
        heads = cfg["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * n
        groups, eps = cfg.get("norm_num_groups", 32), cfg.get("norm_eps", 1e-5)
        layers, ctx = cfg.get("layers_per_block", 2), cfg.get("cross_attention_dim", 768)
        depth = cfg.get("transformer_layers_per_block", 1)
        linear = cfg.get("use_linear_projection", False)
        temb = boc[0] * 4
        self.flip, self.shift, self.base = cfg.get("flip_sin_to_cos", True), cfg.get("freq_shift", 0), boc[0]

        def transformer(channels, h):
            return Transformer2DModel(channels, h, groups, ctx, depth, linear)

        self.conv_in = nn.Conv2d(cfg.get("in_channels", 4), boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        out_ch = boc[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            in_ch, out_ch = out_ch, boc[i]
            attns = [transformer(out_ch, heads[i]) for _ in range(layers)] if kind == "CrossAttnDownBlock2D" else []
            resnets = [ResnetBlock2D(in_ch if j == 0 else out_ch, out_ch, temb, groups, eps) for j in range(layers)]
            self.down_blocks.append(Block(resnets, attns, downsample=Downsample2D(out_ch) if i < n - 1 else None))
        rboc, rheads = boc[::-1], heads[::-1]
        out_ch = rboc[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out_ch, in_ch = out_ch, rboc[i], rboc[min(i + 1, n - 1)]
            count = layers + 1
            attns = [transformer(out_ch, rheads[i]) for _ in range(count)] if kind == "CrossAttnUpBlock2D" else []
            resnets = [ResnetBlock2D((prev if j == 0 else out_ch) + (in_ch if j == count - 1 else out_ch), out_ch,
                                     temb, groups, eps) for j in range(count)]
            self.up_blocks.append(Block(resnets, attns, upsample=Upsample2D(out_ch) if i < n - 1 else None))
        self.mid_block = Block([ResnetBlock2D(boc[-1], boc[-1], temb, groups, eps) for _ in range(2)],
                               [transformer(boc[-1], heads[-1])])
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg.get("out_channels", 4), 3, padding=1)

    def forward(self, sample, timesteps, context):
        emb = self.time_embedding(timestep_embedding(timesteps, self.base, self.flip, self.shift).to(sample.dtype))
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            for j, resnet in enumerate(block.resnets):
                x = resnet(x, emb)
                if block.attention(j) is not None:
                    x = block.attention(j)(x, context)
                skips.append(x)
            if hasattr(block, "downsamplers"):
                x = block.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block.resnets[0](x, emb)
        x = self.mid_block.attentions[0](x, context)
        x = self.mid_block.resnets[1](x, emb)
        for block in self.up_blocks:
            for j, resnet in enumerate(block.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), emb)
                if block.attention(j) is not None:
                    x = block.attention(j)(x, context)
            if hasattr(block, "upsamplers"):
                x = block.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))

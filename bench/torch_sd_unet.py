"""PyTorch side of the sd_unet_step workload (imported by torch_side.py): one denoising step of the
Stable Diffusion 1.5 UNet (the independent implementation of sd_unet_torch.py, diffusers' layout, random
weights) at batch 2, a 4x64x64 latent and a 77x768 context, f32 with TF32 off like Meganeura's f32
kernels. Measured eager and as a captured CUDA graph; the faster is the value, the other in the note."""

import torch
from torch_timing import median_ms as _median_ms

import sd_unet_torch

DEV = "cuda"
SD15 = {
    "in_channels": 4, "out_channels": 4, "sample_size": 64,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "norm_num_groups": 32,
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_eps": 1e-5, "flip_sin_to_cos": True, "freq_shift": 0,
}




def step(emit):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    unet = sd_unet_torch.UNet2DConditionModel(SD15).to(DEV).eval()
    sample = torch.randn(2, 4, 64, 64, device=DEV)
    timesteps = torch.tensor([981.0, 17.0], device=DEV)
    context = torch.randn(2, 77, 768, device=DEV)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        eager = _median_ms(lambda: unet(sample, timesteps, context), runs=20)
        graph_ms = None
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    unet(sample, timesteps, context)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                unet(sample, timesteps, context)
            graph_ms = _median_ms(graph.replay, runs=20)
        except RuntimeError as e:  # capture is an optimisation; eager stands alone
            graph_note = f"CUDA graph failed: {str(e)[:60]}"
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    if graph_ms is not None and graph_ms < eager:
        emit("sd_unet_step", graph_ms, "ms", f"f32 CUDA graph; eager {eager:.2f} ms; peak {peak:.0f} MiB")
    else:
        other = f"CUDA graph {graph_ms:.2f} ms" if graph_ms is not None else graph_note
        emit("sd_unet_step", eager, "ms", f"f32 eager; {other}; peak {peak:.0f} MiB")


def run(names, emit):
    if "sd_unet_step" in names:
        step(emit)

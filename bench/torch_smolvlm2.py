"""PyTorch side of the SmolVLM2 workloads (imported by torch_side.py): a SmolVLM2-256M-size
SmolVLMForConditionalGeneration built by transformers from a config object, random weights, f32 on
CUDA (TF32 off, as Meganeura computes in f32), one 512x512 image (64 image tokens) in an 80-token
prompt — the same shapes bench_smolvlm2 uses.

smolvlm2_ttft: pixels and ids in, the first greedy token id on the host (generate with one new
token). smolvlm2_decode_step: (t(34 new tokens) - t(2 new tokens)) / 32 with generate, so the prompt
cancels out. Run alone: python3 bench/torch_smolvlm2.py smolvlm2_ttft smolvlm2_decode_step"""
import json
import sys

import torch
from torch_timing import median_ms as _median_ms

DEV = "cuda"
IMAGE_TOKEN = 49190
TEXT_BEFORE, TEXT_AFTER = 8, 8


def _config():
    from transformers import SmolVLMConfig
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  num_channels=3, image_size=512, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    text = dict(model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                rms_norm_eps=1e-5, rope_theta=100000.0, hidden_act="silu", tie_word_embeddings=False,
                bos_token_id=1, eos_token_id=2)
    return SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=4, image_token_id=IMAGE_TOKEN,
                         tie_word_embeddings=False, pad_token_id=0)


def _model():
    from transformers import SmolVLMForConditionalGeneration
    torch.manual_seed(0)
    with torch.device(DEV):
        model = SmolVLMForConditionalGeneration(_config())
    return model.eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    image_tokens = (512 // 16 // 4) ** 2
    ids = torch.cat([torch.randint(4, 40004, (TEXT_BEFORE,), generator=g),
                     torch.full((image_tokens,), IMAGE_TOKEN),
                     torch.randint(4, 40004, (TEXT_AFTER,), generator=g)])[None].to(DEV)
    pixels = (torch.rand(1, 1, 3, 512, 512, generator=g) * 2 - 1).to(DEV)
    return ids, pixels




def run(names, emit):
    wanted = [n for n in ("smolvlm2_ttft", "smolvlm2_decode_step") if n in names]
    if not wanted:
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _model()
    ids, pixels = _inputs()
    attention = torch.ones_like(ids)

    def generate(tokens):
        return model.generate(input_ids=ids, attention_mask=attention, pixel_values=pixels, max_new_tokens=tokens,
                              min_new_tokens=tokens, do_sample=False)

    with torch.no_grad():
        torch.cuda.reset_peak_memory_stats()
        if "smolvlm2_ttft" in wanted:
            ttft = _median_ms(lambda: generate(1)[0, -1].item())
            peak = torch.cuda.max_memory_allocated() / 2 ** 20
            def first_token():
                out = model(input_ids=ids, attention_mask=attention, pixel_values=pixels, logits_to_keep=1)
                return out.logits[0, -1].argmax(-1).item()
            forward = _median_ms(first_token)
            emit("smolvlm2_ttft", min(ttft, forward), "ms",
                 f"transformers eager f32: generate(1 token) {ttft:.2f} ms, one forward + argmax {forward:.2f} ms; "
                 f"{ids.shape[1]}-token prompt; peak {peak:.0f} MiB")
        if "smolvlm2_decode_step" in wanted:
            short = _median_ms(lambda: generate(2), runs=5)
            long = _median_ms(lambda: generate(34), runs=5)
            emit("smolvlm2_decode_step", (long - short) / 32, "ms",
                 f"transformers eager f32 generate: (t(34) {long:.1f} ms - t(2) {short:.1f} ms) / 32")


if __name__ == "__main__":
    def _emit(workload, value, unit, note):
        print(json.dumps({"workload": workload, "value": value, "unit": unit, "note": note}), flush=True)
    run(set(sys.argv[1:]), _emit)

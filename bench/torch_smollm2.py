"""PyTorch side of the SmolLM2-135M workloads (imported by torch_side.py): the real configuration with
random weights, measured with transformers eager and with a compact Llama that keeps a static KV cache
and replays one captured CUDA graph per decode step (the strongest PyTorch decode form found). Each
row reports the faster form as its value, the other in its note, and the peak device memory."""

import torch
from torch_timing import median_ms as _median_ms
import torch.nn.functional as F

DEV = "cuda"
H, NH, NKV, HD, L, V = 576, 9, 3, 64, 30, 49152


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=H, intermediate_size=1536, num_hidden_layers=L,
                      num_attention_heads=NH, num_key_value_heads=NKV, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, hidden_act="silu")
    return LlamaForCausalLM(cfg).to(DEV)




class CompactLlama:
    """The Llama forward over a static KV cache of T positions, written with plain tensor ops."""

    def __init__(self, weights, positions):
        self.W = weights
        self.inv = 1.0 / (100000.0 ** (torch.arange(0, HD, 2, device=DEV).float() / HD))
        self.T = positions
        self.kc = torch.zeros(L, NKV, positions, HD, device=DEV)
        self.vc = torch.zeros_like(self.kc)

    def rope(self, x, pos):
        f = pos[:, None].float() * self.inv[None]
        c, s = torch.cat([f.cos()] * 2, -1)[:, None], torch.cat([f.sin()] * 2, -1)[:, None]
        return x * c + torch.cat([-x[..., HD // 2:], x[..., :HD // 2]], -1) * s

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, ids, pos):
        W, t = self.W, ids.shape[0]
        x = W["model.embed_tokens.weight"][ids]
        for i in range(L):
            p = f"model.layers.{i}."
            h = self.rms(x, W[p + "input_layernorm.weight"])
            q = (h @ W[p + "self_attn.q_proj.weight"].T).view(t, NH, HD)
            k = (h @ W[p + "self_attn.k_proj.weight"].T).view(t, NKV, HD)
            v = (h @ W[p + "self_attn.v_proj.weight"].T).view(t, NKV, HD)
            q, k = self.rope(q, pos), self.rope(k, pos)
            self.kc[i].index_copy_(1, pos, k.transpose(0, 1))
            self.vc[i].index_copy_(1, pos, v.transpose(0, 1))
            K = self.kc[i].repeat_interleave(NH // NKV, 0)
            Vv = self.vc[i].repeat_interleave(NH // NKV, 0)
            mask = torch.arange(self.T, device=DEV)[None, :] <= pos[:, None]
            a = F.scaled_dot_product_attention(q.transpose(0, 1), K, Vv, attn_mask=mask[None])
            x = x + a.transpose(0, 1).reshape(t, H) @ W[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, W[p + "post_attention_layernorm.weight"])
            x = x + (F.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)) \
                @ W[p + "mlp.down_proj.weight"].T
        return self.rms(x[-1:], W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T


def _captured_step(model, tok, pos):
    """One decode step of `model` (token tok at position pos, static tensors) captured as a CUDA
    graph after a warm-up on a side stream; returns the graph and its argmax output tensor."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model.forward(tok, pos)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model.forward(tok, pos).argmax(-1)
    return graph, out


def _generate32(hf, emit):
    torch.backends.cuda.matmul.allow_tf32 = False
    prompt = torch.randint(0, V, (1, 6), device=DEV)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        eager = _median_ms(lambda: hf.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False))
    eager_peak = torch.cuda.max_memory_allocated() / 2 ** 20
    model = CompactLlama(dict(hf.state_dict()), 64)
    tok = torch.zeros(1, dtype=torch.long, device=DEV)
    pos = torch.zeros(1, dtype=torch.long, device=DEV)
    with torch.no_grad():
        graph, out = _captured_step(model, tok, pos)

        def generate():
            model.kc.zero_()
            model.vc.zero_()
            tok.copy_(model.forward(prompt[0], torch.arange(6, device=DEV)).argmax(-1))
            for j in range(32):
                pos.fill_(6 + j)
                graph.replay()
                tok.copy_(out)
        torch.cuda.reset_peak_memory_stats()
        best = _median_ms(generate)
        best_peak = torch.cuda.max_memory_allocated() / 2 ** 20
        step = _median_ms(lambda: graph.replay(), runs=200)
    emit("smollm2_generate32", best, "ms",
         f"compact Llama, static KV cache, CUDA graph per step ({step:.2f} ms/step, peak {best_peak:.0f} MiB); "
         f"transformers eager generate {eager:.1f} ms (peak {eager_peak:.0f} MiB)")


def _decode_step(hf, emit):
    """One decode step as bench_smollm2 times it: the step (64-position cache, position 6) and the
    token read back on the host, here a captured CUDA graph replay and argmax .item()."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model = CompactLlama(dict(hf.state_dict()), 64)
    tok = torch.full((1,), 17, dtype=torch.long, device=DEV)
    pos = torch.full((1,), 6, dtype=torch.long, device=DEV)
    with torch.no_grad():
        graph, out = _captured_step(model, tok, pos)
        # The replay must compute what the eager forward does before it is timed.
        expected = model.forward(tok, pos).argmax(-1).item()
        graph.replay()
        assert out.item() == expected, "CUDA-graph decode step disagrees with the eager forward"
        torch.cuda.reset_peak_memory_stats()
        ms = _median_ms(lambda: (graph.replay(), out.item()), runs=200)
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    emit("smollm2_decode_step", ms, "ms",
         f"compact Llama f32, 64-position static KV cache, CUDA graph replay + token readback; peak {peak:.0f} MiB")


def _prefill128(hf, emit):
    torch.backends.cuda.matmul.allow_tf32 = False
    prompt = torch.randint(0, V, (1, 128), device=DEV)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        eager = _median_ms(lambda: hf(prompt, logits_to_keep=1).logits.argmax(-1).item())
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
        model = CompactLlama(dict(hf.state_dict()), 128)
        compact = _median_ms(lambda: model.forward(prompt[0], torch.arange(128, device=DEV)).argmax(-1).item())
    best = min(eager, compact)
    emit("smollm2_prefill128", best, "ms",
         f"transformers eager {eager:.2f} ms (peak {peak:.0f} MiB), compact Llama eager {compact:.2f} ms")


def _train_step(hf, emit):
    torch.backends.cuda.matmul.allow_tf32 = False
    hf.train()
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, V, (4, 128), device=DEV)

    def step():
        loss = hf(ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.reset_peak_memory_stats()
    ms = _median_ms(step)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20
    hf.eval()
    emit("smollm2_train_step", ms, "ms", f"transformers eager f32, AdamW, batch 4x128; peak {peak:.0f} MiB")


def run(names, emit):
    workloads = {"smollm2_generate32": _generate32, "smollm2_decode_step": _decode_step,
                 "smollm2_prefill128": _prefill128, "smollm2_train_step": _train_step}
    wanted = [n for n in workloads if n in names]
    if not wanted:
        return
    hf = _model().eval()
    for name in wanted:
        workloads[name](hf, emit)

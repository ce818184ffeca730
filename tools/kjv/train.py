#!/usr/bin/python3
"""Trains hearth's demo model: a small `llama`-architecture model on the King James Bible.

Runs on the CPU with Debian's python3-torch (1.13, with OpenBLAS from libopenblas0-pthread;
with the reference BLAS it is ~15x slower). Reads token ids written by `hearth tokenize`
(so training sees exactly the tokens hearth will), trains with a fixed seed, and writes:

  OUT/model.json     hyper-parameters, general.* metadata and the tensor list for hearth-export
  OUT/model.f32      the weights, raw little-endian float32, llama.cpp tensor names and layout
  OUT/model-init.f32 the initial (random) weights, same layout
  OUT/fixture.json   held-out perplexity (llama.cpp's procedure) and a greedy continuation
  OUT/train.log      the loss curve

The forward pass is the `llama` one of ../shared/docs/architectures.md §2: pre-norm RMSNorm,
GQA attention with adjacent-pair (NORM) RoPE, SwiGLU, tied embeddings.

Usage: train.py OUT_DIR [--steps N] [--threads N]
"""
import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F

# Hyper-parameters (the model card in models/README.md repeats them).
CONFIG = dict(
    n_vocab=4096, n_ctx=256, n_embd=256, n_layer=6, n_head=8, n_head_kv=4, n_ff=768,
    rope_freq_base=10000.0, rms_eps=1e-5,
)
TRAIN = dict(
    seed=1234, steps=2000, batch=16, lr=2e-3, lr_min=2e-4, warmup=100, weight_decay=0.1,
    betas=(0.9, 0.95), grad_clip=1.0, eval_every=200,
)
BOS = 1
GREEDY_PROMPT = "And God said"
GREEDY_STEPS = 32
PPL_CTX = 256  # window of the perplexity figures (hearth perplexity -c 256)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(n_ctx, head_dim, base):
    # θ_i = base^(-2i/hd), angle = p·θ_i; pairs (x[2i], x[2i+1]) (NORM RoPE, §1.3).
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x: [B, H, T, hd]; rotate adjacent pairs.
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[: x.shape[2]], sin[: x.shape[2]]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["n_embd"], c["n_embd"] // c["n_head"]
        self.c, self.hd = c, hd
        self.attn_norm = torch.nn.Parameter(torch.ones(d))
        self.wq = torch.nn.Linear(d, c["n_head"] * hd, bias=False)
        self.wk = torch.nn.Linear(d, c["n_head_kv"] * hd, bias=False)
        self.wv = torch.nn.Linear(d, c["n_head_kv"] * hd, bias=False)
        self.wo = torch.nn.Linear(c["n_head"] * hd, d, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(d))
        self.gate = torch.nn.Linear(d, c["n_ff"], bias=False)
        self.up = torch.nn.Linear(d, c["n_ff"], bias=False)
        self.down = torch.nn.Linear(c["n_ff"], d, bias=False)

    def forward(self, x, cos, sin, mask):
        c, hd = self.c, self.hd
        b, t, _ = x.shape
        h = rms_norm(x, self.attn_norm, c["rms_eps"])
        q = self.wq(h).view(b, t, c["n_head"], hd).transpose(1, 2)
        k = self.wk(h).view(b, t, c["n_head_kv"], hd).transpose(1, 2)
        v = self.wv(h).view(b, t, c["n_head_kv"], hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        g = c["n_head"] // c["n_head_kv"]  # query head h uses KV head h // g
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask[:t, :t]
        a = att.softmax(-1) @ v
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, -1))
        h = rms_norm(x, self.ffn_norm, c["rms_eps"])
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_embd = torch.nn.Embedding(c["n_vocab"], c["n_embd"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.output_norm = torch.nn.Parameter(torch.ones(c["n_embd"]))
        cos, sin = rope_tables(c["n_ctx"], c["n_embd"] // c["n_head"], c["rope_freq_base"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.full((c["n_ctx"], c["n_ctx"]), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)
        for m in self.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(m.weight, 0.0, 0.02)
        for blk in self.blocks:  # scaled init of the residual projections (GPT-2)
            for m in (blk.wo, blk.down):
                torch.nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * c["n_layer"]))

    def forward(self, ids):
        x = self.tok_embd(ids)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        return rms_norm(x, self.output_norm, self.c["rms_eps"]) @ self.tok_embd.weight.T

    def gguf_tensors(self):
        """(llama.cpp name, tensor) in the order the converter writes them."""
        out = [("token_embd.weight", self.tok_embd.weight), ("output_norm.weight", self.output_norm)]
        for i, b in enumerate(self.blocks):
            p = f"blk.{i}."
            out += [(p + "attn_norm.weight", b.attn_norm), (p + "attn_q.weight", b.wq.weight),
                    (p + "attn_k.weight", b.wk.weight), (p + "attn_v.weight", b.wv.weight),
                    (p + "attn_output.weight", b.wo.weight), (p + "ffn_norm.weight", b.ffn_norm),
                    (p + "ffn_gate.weight", b.gate.weight), (p + "ffn_up.weight", b.up.weight),
                    (p + "ffn_down.weight", b.down.weight)]
        return out


def export_weights(model, path):
    """Writes the GGUF tensors as raw float32; returns the tensor list for model.json."""
    offset, spec = 0, []
    with open(path, "wb") as f:
        for name, t in model.gguf_tensors():
            data = t.detach().float().contiguous()
            f.write(data.numpy().astype("<f4").tobytes())
            spec.append({"name": name, "shape": list(reversed(data.shape)), "offset": offset})
            offset += data.numel() * 4
    return spec


def read_ids(path):
    with open(path) as f:
        return torch.tensor([int(x) for x in f.read().split()], dtype=torch.long)


@torch.no_grad()
def perplexity(model, ids, n_ctx):
    """llama.cpp's perplexity: non-overlapping windows of n_ctx tokens, the first token of each
    replaced by BOS, the negative log-likelihood of the second half of each window."""
    first = n_ctx // 2
    n_chunks = len(ids) // n_ctx
    nll, count = 0.0, 0
    for i in range(n_chunks):
        w = ids[i * n_ctx:(i + 1) * n_ctx].clone()
        w[0] = BOS
        logp = model(w[None]).double().log_softmax(-1)[0]
        nll -= logp[first:n_ctx - 1].gather(1, w[first + 1:][:, None]).sum().item()
        count += n_ctx - 1 - first
    return math.exp(nll / count), n_chunks


def unigram_perplexity(train_ids, ids, n_ctx):
    """Perplexity of a unigram model (token frequencies of the training split, add-one smoothed)
    on the same positions the perplexity procedure scores."""
    counts = torch.bincount(train_ids, minlength=CONFIG["n_vocab"]).double() + 1.0
    logp = (counts / counts.sum()).log()
    first = n_ctx // 2
    n_chunks = len(ids) // n_ctx
    targets = torch.cat([ids[i * n_ctx + first + 1:(i + 1) * n_ctx] for i in range(n_chunks)])
    return math.exp(-logp[targets].mean().item())


@torch.no_grad()
def greedy(model, prompt_ids, steps):
    ids, out, margins = list(prompt_ids), [], []
    for _ in range(steps):
        logits = model(torch.tensor(ids)[None])[0, -1]
        top2 = logits.topk(2)
        out.append(int(top2.indices[0]))
        margins.append(float(top2.values[0] - top2.values[1]))
        ids.append(out[-1])
    return out, margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=TRAIN["steps"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(TRAIN["seed"])
    c = CONFIG
    out = args.out
    train_ids = read_ids(os.path.join(out, "train.ids"))
    held_ids = read_ids(os.path.join(out, "heldout.ids"))
    ci_ids = read_ids(os.path.join(out, "heldout-ci.ids"))
    prompt_ids = read_ids(os.path.join(out, "prompt.ids")).tolist()

    model = Llama(c)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": TRAIN["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=TRAIN["lr"], betas=TRAIN["betas"])
    gen = torch.Generator().manual_seed(TRAIN["seed"])
    log = open(os.path.join(out, "train.log"), "w")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    say(f"params {n_params}, train tokens {len(train_ids)}, held-out tokens {len(held_ids)}, config {c}, train {TRAIN}")
    export_weights(model, os.path.join(out, "model-init.f32"))  # the same shape, random weights
    random_ppl, _ = perplexity(model.eval(), held_ids, PPL_CTX)
    say(f"step 0: held-out perplexity {random_ppl:.2f} (random weights)")
    t0 = time.time()
    T, B = c["n_ctx"], TRAIN["batch"]
    for step in range(1, args.steps + 1):
        model.train()
        # LR: linear warm-up, cosine decay to lr_min.
        if step <= TRAIN["warmup"]:
            lr = TRAIN["lr"] * step / TRAIN["warmup"]
        else:
            q = (step - TRAIN["warmup"]) / max(1, args.steps - TRAIN["warmup"])
            lr = TRAIN["lr_min"] + 0.5 * (TRAIN["lr"] - TRAIN["lr_min"]) * (1 + math.cos(math.pi * q))
        for g in opt.param_groups:
            g["lr"] = lr
        # Random windows of T+1 tokens; each starts with BOS, as hearth's prompts and
        # llama.cpp's perplexity windows do.
        starts = torch.randint(0, len(train_ids) - T - 1, (B,), generator=gen)
        x = torch.stack([train_ids[s:s + T + 1] for s in starts.tolist()])
        x[:, 0] = BOS
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, c["n_vocab"]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["grad_clip"])
        opt.step()
        if step % 20 == 0:
            el = time.time() - t0
            say(f"step {step}: loss {loss.item():.4f}, lr {lr:.2e}, {step * B * T / el:.0f} tokens/s, {el / 60:.1f} min")
        if step % TRAIN["eval_every"] == 0 or step == args.steps:
            ppl, _ = perplexity(model.eval(), held_ids, PPL_CTX)
            say(f"step {step}: held-out perplexity {ppl:.3f}")

    model.eval()
    # Export: weights rounded through F16 are what the F16 GGUF holds; the figures below are
    # computed on both the float32 weights and the F16-rounded ones.
    spec = export_weights(model, os.path.join(out, "model.f32"))
    ppl32, n_chunks = perplexity(model, held_ids, PPL_CTX)
    ppl32_ci, n_chunks_ci = perplexity(model, ci_ids, PPL_CTX)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    ppl16, _ = perplexity(model, held_ids, PPL_CTX)
    ppl16_ci, _ = perplexity(model, ci_ids, PPL_CTX)
    greedy_ids, margins = greedy(model, prompt_ids, GREEDY_STEPS)
    fixture = {
        "n_ctx": PPL_CTX,
        "heldout": {"n_chunks": n_chunks, "ppl_f32_weights": ppl32, "ppl_f16_weights": ppl16,
                    "ppl_random_weights": random_ppl, "ppl_unigram": unigram_perplexity(train_ids, held_ids, PPL_CTX)},
        "heldout_ci": {"file": "kjv-heldout-ci.txt", "n_chunks": n_chunks_ci, "ppl_f32_weights": ppl32_ci,
                       "ppl_f16_weights": ppl16_ci},
        "greedy": {"prompt": GREEDY_PROMPT, "prompt_ids": prompt_ids, "ids": greedy_ids,
                   "margins": [round(m, 4) for m in margins], "weights": "F16-rounded"},
        "training": {"seed": TRAIN["seed"], "steps": args.steps, "threads": args.threads,
                     "minutes": round((time.time() - t0) / 60, 1), "params": n_params},
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=1)
    meta = {
        "general.architecture": "llama",
        "general.type": "model",
        "general.name": "hearth-kjv",
        "general.author": "hearth",
        "general.version": "1.0",
        "general.description": ("A 5.8M-parameter llama-architecture model trained from scratch on the King "
                                "James Bible by hearth's tools/kjv/train.py (seed %d, %d steps); "
                                "hearth's embedded demo model." % (TRAIN["seed"], args.steps)),
        "general.license": "CC0-1.0",
        "general.source.url": "https://packages.debian.org/bookworm/bible-kjv-text",
        "general.source.description": ("King James Version (1611), public domain, from the Debian package "
                                       "bible-kjv-text 4.38 read with bible-kjv 4.38; extracted by "
                                       "tools/kjv/extract_corpus.py; held-out split: every 16th chapter"),
        "llama.context_length": c["n_ctx"],
        "llama.embedding_length": c["n_embd"],
        "llama.block_count": c["n_layer"],
        "llama.feed_forward_length": c["n_ff"],
        "llama.attention.head_count": c["n_head"],
        "llama.attention.head_count_kv": c["n_head_kv"],
        "llama.rope.freq_base": float(c["rope_freq_base"]),
        "llama.attention.layer_norm_rms_epsilon": float(c["rms_eps"]),
        "llama.rope.dimension_count": c["n_embd"] // c["n_head"],
        "llama.vocab_size": c["n_vocab"],
        "tokenizer.chat_template": ("{{ bos_token }}{% for message in messages %}"
                                    "{% if message['role'] == 'user' %}{{ 'Question: ' + message['content'] + '\n' }}"
                                    "{% elif message['role'] == 'assistant' %}{{ 'Answer: ' + message['content'] + '\n' }}"
                                    "{% else %}{{ message['content'] + '\n' }}{% endif %}{% endfor %}"
                                    "{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}"),
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump({"metadata": meta, "tensors": spec}, f, indent=1)
    say(f"done: held-out perplexity {ppl32:.3f} (f32 weights), {ppl16:.3f} (F16-rounded), random {random_ppl:.1f}, "
        f"unigram {fixture['heldout']['ppl_unigram']:.1f}; CI subset {ppl16_ci:.3f} over {n_chunks_ci} windows; "
        f"greedy min margin {min(margins):.3f}")


if __name__ == "__main__":
    main()

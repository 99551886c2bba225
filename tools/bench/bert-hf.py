#!/usr/bin/env python3
"""bert-hf.py: the peer in lexis's BERT benchmarks: Hugging Face transformers / PyTorch.

    tools/bench/bert-hf.py gpu [--batch 128] [--seqs 128,256,512] [--iters 20]
    tools/bench/bert-hf.py cpu [--batch 8] [--seqs 128,256,512] [--threads 2] [--iters 3]

BERT-base shape (12 layers, hidden 768, 12 heads, intermediate 3072, vocabulary
30522), random weights (the speed does not depend on their values), every
document full length (attention mask of ones), random token ids.
  gpu: transformers BertForMaskedLM in bf16 with SDPA attention; two paths:
       'splade'  encoder + masked-LM head + log1p(relu) max-pool over positions
                 (left on the GPU; 'splade+copy' also copies it to page-locked
                 host memory as F32, as lexis's splade path does)
       'encoder' the bare encoder (last hidden state)
       timed with CUDA events after warm-up, median of --iters runs.
  cpu: the same model in fp32 on PyTorch's CPU backend with torch.set_num_threads;
       when transformers is missing (Debian's python3-torch has no transformers)
       an equivalent BERT written with torch.nn ops (same math: exact GELU,
       layer norm eps 1e-12, scaled-dot-product softmax attention) is timed.
Prints one line per (path, seq): 'hf PATH seq S batch B: X docs/s (T ms/batch)'.
"""
import argparse
import math
import statistics
import time

import torch

V, H, NL, NH, I, P = 30522, 768, 12, 12, 3072, 512


def hf_model(dtype, attn):
    from transformers import BertConfig, BertForMaskedLM
    cfg = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH,
                     intermediate_size=I, max_position_embeddings=P, hidden_act="gelu")
    try:
        m = BertForMaskedLM._from_config(cfg, attn_implementation=attn, dtype=dtype)
    except TypeError:
        m = BertForMaskedLM._from_config(cfg, attn_implementation=attn, torch_dtype=dtype)
    return m.eval()


class PlainBert(torch.nn.Module):
    """BERT-base in torch.nn ops, for a PyTorch without transformers."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.we, self.pe, self.te = nn.Embedding(V, H), nn.Embedding(P, H), nn.Embedding(2, H)
        self.eln = nn.LayerNorm(H, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(NL):
            m = nn.Module()
            m.qkv, m.o, m.ln1 = nn.Linear(H, 3 * H), nn.Linear(H, H), nn.LayerNorm(H, eps=1e-12)
            m.i, m.out, m.ln2 = nn.Linear(H, I), nn.Linear(I, H), nn.LayerNorm(H, eps=1e-12)
            self.layers.append(m)
        self.tdense, self.tln = nn.Linear(H, H), nn.LayerNorm(H, eps=1e-12)
        self.dec = nn.Linear(H, V)

    def encoder(self, ids):
        B, L = ids.shape
        pos = torch.arange(L).unsqueeze(0)
        x = self.eln(self.we(ids) + self.pe(pos) + self.te(torch.zeros_like(ids)))
        for m in self.layers:
            q, k, v = m.qkv(x).view(B, L, 3, NH, H // NH).permute(2, 0, 3, 1, 4)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(H // NH), dim=-1) @ v
            x = m.ln1(x + m.o(a.transpose(1, 2).reshape(B, L, H)))
            x = m.ln2(x + m.out(torch.nn.functional.gelu(m.i(x))))
        return x

    def splade(self, ids):
        h = self.tln(torch.nn.functional.gelu(self.tdense(self.encoder(ids))))
        return torch.log1p(torch.relu(self.dec(h))).max(dim=1).values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("where", choices=["gpu", "cpu"])
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seqs", default="128,256,512")
    ap.add_argument("--iters", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", default="splade,encoder")
    a = ap.parse_args()
    seqs = [int(s) for s in a.seqs.split(",")]
    paths = a.paths.split(",")
    torch.manual_seed(0)
    if a.where == "gpu":
        B, iters = a.batch or 128, a.iters or 20
        m = hf_model(torch.bfloat16, "sdpa").cuda()
        import transformers
        print("hf: torch %s transformers %s %s" % (torch.__version__, transformers.__version__,
                                                   torch.cuda.get_device_name()))
        for S in seqs:
            ids = torch.randint(1000, V, (B, S), device="cuda")
            am = torch.ones(B, S, dtype=torch.long, device="cuda")
            tt = torch.zeros(B, S, dtype=torch.long, device="cuda")
            fns = {
                "splade": lambda: (torch.log1p(torch.relu(m(input_ids=ids, attention_mask=am, token_type_ids=tt).logits))
                                   * am.unsqueeze(-1)).max(dim=1).values,
                "encoder": lambda: m.bert(input_ids=ids, attention_mask=am, token_type_ids=tt).last_hidden_state,
            }
            # lexis's splade path ends with the pooled [B, V] F32 in page-locked host
            # memory (kn_host_alloc); this one does too
            host = torch.empty((B, V), dtype=torch.float32, pin_memory=True)
            fns["splade+copy"] = lambda: host.copy_(fns["splade"]().float())
            for p in paths:
                f = fns[p]
                with torch.inference_mode():
                    for _ in range(3):
                        f()
                    torch.cuda.synchronize()
                    ts = []
                    for _ in range(iters):
                        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        e0.record()
                        f()
                        e1.record()
                        torch.cuda.synchronize()
                        ts.append(e0.elapsed_time(e1) / 1e3)
                t = statistics.median(ts)
                print("hf %-11s seq %3d batch %d: %8.1f docs/s (%.2f ms/batch)" % (p, S, B, B / t, t * 1e3), flush=True)
    else:
        B, iters = a.batch or 8, a.iters or 3
        torch.set_num_threads(a.threads)
        try:
            m = hf_model(torch.float32, "sdpa")
            kind = "transformers"
            enc = lambda ids: m.bert(input_ids=ids).last_hidden_state
            spl = lambda ids: torch.log1p(torch.relu(m(input_ids=ids).logits)).max(dim=1).values
        except ImportError:
            m = PlainBert().eval()
            kind = "torch.nn BERT"
            enc, spl = m.encoder, m.splade
        print("pytorch-cpu: torch %s, %s, %d threads, %s" % (torch.__version__, kind, torch.get_num_threads(),
              torch.__config__.parallel_info().splitlines()[0] if hasattr(torch.__config__, "parallel_info") else ""))
        for S in seqs:
            ids = torch.randint(1000, V, (B, S))
            for p in paths:
                f = {"splade": spl, "encoder": enc}[p]
                with torch.inference_mode():
                    f(ids)
                    ts = []
                    for _ in range(iters):
                        t0 = time.perf_counter()
                        f(ids)
                        ts.append(time.perf_counter() - t0)
                t = statistics.median(ts)
                print("pytorch-cpu %-7s seq %3d batch %d: %6.2f docs/s (%.0f ms/batch)" % (p, S, B, B / t, t * 1e3), flush=True)


if __name__ == "__main__":
    main()

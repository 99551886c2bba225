#!/usr/bin/env python3
"""ref-bert.py: reference outputs for the tiny BERT checkpoints, from transformers.

    tools/ref-bert.py CHECKPOINT_DIR... [--out OUTDIR]

For each checkpoint directory written by tools/gen-tiny-bert.py (config.json,
model.safetensors, inputs.json) it loads BertForMaskedLM with Hugging Face
transformers (eager attention), runs the documents of inputs.json as one
right-padded batch with an attention mask, and writes ref.safetensors beside
the checkpoint (or to OUTDIR/<name>.ref.safetensors):

    input_ids, token_type_ids, attention_mask   I32 [B, L]   (0 where padded)
    hidden      F32 [B, L, H]  last hidden state (rows past a doc's length are padding)
    logits      F32 [B, L, V]  masked-LM logits
    splade      F32 [B, V]     max over the doc's positions of log(1 + relu(logits))

The forward runs in float64 (weights upcast exactly from their stored dtype),
so the fixture carries the model's function, not one float32 rounding of it;
the float32 run's distance from it is printed for the record.
Needs torch, transformers and safetensors (the GPU machine has them).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import BertForMaskedLM


def load(d, dtype):
    try:
        m = BertForMaskedLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    except TypeError:
        m = BertForMaskedLM.from_pretrained(d, torch_dtype=dtype, attn_implementation="eager")
    return m.eval()


def run(m, ids, tt, am):
    with torch.no_grad():
        o = m(input_ids=ids, token_type_ids=tt, attention_mask=am, output_hidden_states=True)
    logits = o.logits
    sp = torch.log1p(torch.relu(logits)) * am.unsqueeze(-1).to(logits.dtype)
    return o.hidden_states[-1], logits, sp.max(dim=1).values


def main(argv):
    dirs, out = [], None
    i = 1
    while i < len(argv):
        if argv[i] == "--out":
            out = argv[i + 1]
            i += 2
        else:
            dirs.append(argv[i])
            i += 1
    for d in dirs:
        docs = json.load(open(os.path.join(d, "inputs.json")))["docs"]
        B, L = len(docs), max(len(x["input_ids"]) for x in docs)
        ids = torch.zeros(B, L, dtype=torch.long)
        tt = torch.zeros(B, L, dtype=torch.long)
        am = torch.zeros(B, L, dtype=torch.long)
        for b, x in enumerate(docs):
            n = len(x["input_ids"])
            ids[b, :n] = torch.tensor(x["input_ids"])
            tt[b, :n] = torch.tensor(x["token_type_ids"])
            am[b, :n] = 1
        h64, l64, s64 = run(load(d, torch.float64), ids, tt, am)
        h32, l32, s32 = run(load(d, torch.float32), ids, tt, am)
        valid = am.bool()
        dh = (h32.double() - h64)[valid].abs().max().item()
        dl = (l32.double() - l64)[valid].abs().max().item()
        print("%s: B=%d L=%d  float32 vs float64 max abs: hidden %.2e logits %.2e" % (d, B, L, dh, dl))
        t = {
            "input_ids": ids.to(torch.int32), "token_type_ids": tt.to(torch.int32),
            "attention_mask": am.to(torch.int32),
            "hidden": h64.float().contiguous(), "logits": l64.float().contiguous(),
            "splade": s64.float().contiguous(),
        }
        path = os.path.join(out, os.path.basename(os.path.normpath(d)) + ".ref.safetensors") if out \
            else os.path.join(d, "ref.safetensors")
        save_file(t, path, metadata={"generator": "lexis ref-bert.py", "transformers": __import__("transformers").__version__})
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

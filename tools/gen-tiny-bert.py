#!/usr/bin/env python3
"""gen-tiny-bert.py: write tiny random BERT masked-LM checkpoints.

    tools/gen-tiny-bert.py OUTDIR [--seed N]

For each shape in SHAPES below it writes OUTDIR/<name>/config.json and
OUTDIR/<name>/model.safetensors with Hugging Face BertForMaskedLM tensor names
(bert.embeddings.*, bert.encoder.layer.N.*, cls.predictions.*), and
OUTDIR/<name>/inputs.json: a small batch of documents of different lengths
(token ids, token types) that tools/ref-bert.py runs through transformers.

Pure Python (no numpy, no torch), deterministic from the seed, so the
checkpoints are the same on every machine. Weights are drawn large enough
(~1/sqrt(fan_in)) that GELU, softmax and layer norm all work away from their
linear regions; a test on near-zero weights would prove little.
The shapes include odd sizes (hidden 30 with 5 heads of 6, an intermediate
size of 47) and the three stored dtypes F32, BF16, F16; one checkpoint stores
the decoder weight (untied), the others rely on tying to the word embeddings
the way save_pretrained writes them.
"""
import json
import math
import os
import random
import struct
import sys

SHAPES = [
    # name, vocab, hidden, layers, heads, inter, max_pos, type_vocab, dtype, tied
    ("tiny-f32", 99, 32, 2, 4, 64, 24, 2, "F32", True),
    ("tiny-odd-bf16", 131, 30, 3, 5, 47, 20, 3, "BF16", False),
    ("tiny-f16", 77, 24, 1, 2, 40, 18, 2, "F16", True),
]


def f32_to_bf16_bits(x):
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    # round to nearest even, as torch does
    u += 0x7FFF + ((u >> 16) & 1)
    return (u >> 16) & 0xFFFF


def pack(values, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    if dtype == "BF16":
        return struct.pack("<%dH" % len(values), *[f32_to_bf16_bits(v) for v in values])
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, shape, values). Writes them in order."""
    header = {"__metadata__": {"format": "pt", "generator": "lexis gen-tiny-bert"}}
    blobs = []
    off = 0
    for name, shape, values in tensors:
        blob = pack(values, dtype)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def gen(outdir, spec, seed):
    name, vocab, hidden, layers, heads, inter, max_pos, type_vocab, dtype, tied = spec
    rng = random.Random("%s/%d" % (name, seed))

    def mat(rows, cols, scale=None):
        s = scale if scale is not None else 1.0 / math.sqrt(cols)
        return [rng.gauss(0.0, s) for _ in range(rows * cols)]

    def vec(n, mean=0.0, s=0.1):
        return [mean + rng.gauss(0.0, s) for _ in range(n)]

    t = []
    p = "bert.embeddings."
    t.append((p + "word_embeddings.weight", (vocab, hidden), mat(vocab, hidden, 0.5)))
    t.append((p + "position_embeddings.weight", (max_pos, hidden), mat(max_pos, hidden, 0.3)))
    t.append((p + "token_type_embeddings.weight", (type_vocab, hidden), mat(type_vocab, hidden, 0.3)))
    t.append((p + "LayerNorm.weight", (hidden,), vec(hidden, 1.0, 0.2)))
    t.append((p + "LayerNorm.bias", (hidden,), vec(hidden)))
    for i in range(layers):
        p = "bert.encoder.layer.%d." % i
        for part in ("query", "key", "value"):
            # queries and keys a little larger so attention is not uniform
            sc = 2.0 / math.sqrt(hidden) if part != "value" else None
            t.append((p + "attention.self.%s.weight" % part, (hidden, hidden), mat(hidden, hidden, sc)))
            t.append((p + "attention.self.%s.bias" % part, (hidden,), vec(hidden)))
        t.append((p + "attention.output.dense.weight", (hidden, hidden), mat(hidden, hidden)))
        t.append((p + "attention.output.dense.bias", (hidden,), vec(hidden)))
        t.append((p + "attention.output.LayerNorm.weight", (hidden,), vec(hidden, 1.0, 0.2)))
        t.append((p + "attention.output.LayerNorm.bias", (hidden,), vec(hidden)))
        t.append((p + "intermediate.dense.weight", (inter, hidden), mat(inter, hidden)))
        t.append((p + "intermediate.dense.bias", (inter,), vec(inter)))
        t.append((p + "output.dense.weight", (hidden, inter), mat(hidden, inter)))
        t.append((p + "output.dense.bias", (hidden,), vec(hidden)))
        t.append((p + "output.LayerNorm.weight", (hidden,), vec(hidden, 1.0, 0.2)))
        t.append((p + "output.LayerNorm.bias", (hidden,), vec(hidden)))
    p = "cls.predictions."
    t.append((p + "transform.dense.weight", (hidden, hidden), mat(hidden, hidden)))
    t.append((p + "transform.dense.bias", (hidden,), vec(hidden)))
    t.append((p + "transform.LayerNorm.weight", (hidden,), vec(hidden, 1.0, 0.2)))
    t.append((p + "transform.LayerNorm.bias", (hidden,), vec(hidden)))
    bias = vec(vocab, 0.0, 0.5)
    t.append((p + "bias", (vocab,), bias))
    if not tied:
        # transformers 5 ties decoder.bias to bias only when the embeddings
        # are tied; an untied checkpoint carries both (as older saves did).
        t.append((p + "decoder.weight", (vocab, hidden), mat(vocab, hidden, 0.5)))
        t.append((p + "decoder.bias", (vocab,), bias))

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    # Stored out of name order on purpose: readers must use the offsets.
    rng.shuffle(t)
    write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
    config = {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": tied,
        "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype],
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    # A batch of documents of different lengths; the longest fills max_pos,
    # one is a single token.
    lens = [max_pos, max_pos - 3, 1, max_pos // 2 + 1]
    docs = []
    for n in lens:
        ids = [rng.randrange(1, vocab) for _ in range(n)]
        types = [rng.randrange(type_vocab) for _ in range(n)]
        docs.append({"input_ids": ids, "token_type_ids": types})
    with open(os.path.join(d, "inputs.json"), "w") as f:
        json.dump({"docs": docs}, f)
        f.write("\n")
    return d


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    seed = 1
    if len(argv) >= 4 and argv[2] == "--seed":
        seed = int(argv[3])
    for spec in SHAPES:
        print(gen(argv[1], spec, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""make-queries.py: the benchmark's query set, deterministic.

    make-queries.py --data ../shared/data --titles data-local/debpkgs.jsonl \
                    [--keyword-queries 500] [--seed 42] > queries.jsonl

Writes {"_id","text"} lines: first every query of DATA/*/queries.jsonl (the
collections in name order, ids prefixed "<collection>:"), then N short
keyword queries ("kw:<n>"): for a package title picked at random, 1-3
distinct words of it ([a-z0-9]+ lowercased, at least 2 characters, not all
digits, not one of Lucene's 33 English stop words), the count drawn
uniformly. Python's random.Random(seed) makes the output reproducible.
"""
import argparse
import glob
import json
import os
import random
import re
import sys

LUCENE_STOP = set("a an and are as at be but by for if in into is it no not of on or such "
                  "that the their then there these they this to was will with".split())
WORD = re.compile(r"[a-z0-9]+")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory of collections (DIR/*/queries.jsonl)")
    ap.add_argument("--titles", required=True, help="JSONL corpus whose titles give keyword queries")
    ap.add_argument("--keyword-queries", type=int, default=500)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    out = sys.stdout
    files = sorted(glob.glob(os.path.join(a.data, "*", "queries.jsonl")))
    if not files:
        sys.exit("make-queries: no %s/*/queries.jsonl" % a.data)
    real = 0
    for path in files:
        coll = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                q = json.loads(line)
                text = q.get("text", "")
                if not isinstance(text, str) or not text.strip():
                    continue
                out.write(json.dumps({"_id": "%s:%s" % (coll, q["_id"]), "text": text},
                                     ensure_ascii=False) + "\n")
                real += 1

    titles = []
    with open(a.titles, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line).get("title") or ""
            words = [w for w in dict.fromkeys(WORD.findall(t.lower()))
                     if len(w) >= 2 and not w.isdigit() and w not in LUCENE_STOP]
            if words:
                titles.append(words)
    if not titles and a.keyword_queries:
        sys.exit("make-queries: no usable titles in %s" % a.titles)
    rng = random.Random(a.seed)
    for i in range(a.keyword_queries):
        words = titles[rng.randrange(len(titles))]
        n = min(rng.randint(1, 3), len(words))
        out.write(json.dumps({"_id": "kw:%d" % i, "text": " ".join(rng.sample(words, n))}) + "\n")
    print("make-queries: %d real queries from %d collections, %d keyword queries"
          % (real, len(files), a.keyword_queries), file=sys.stderr)


if __name__ == "__main__":
    main()

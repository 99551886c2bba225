#!/usr/bin/python3
"""bench.py: lexis against Xapian and SQLite FTS5, same corpus, same queries.

    bench.py --lexis build/release/lexis --lexis-lat build/release/lexis-lat \
             --queries Q.jsonl --out build/bench \
             --corpus NAME=FILE [--corpus NAME=FILE ...] [--systems lexis,xapian,fts5]

tools/bench/run.sh (make bench) prepares the corpora and the queries and calls
this; see tools/bench/README.md for what is measured and how. For each
corpus, for each system: build (time, documents/s, size on disk), top-10 and
top-1000 latency (single thread, one warm-up pass, then one timed pass; each
query timed around the engine call only), queries/s on all cores (k=10), the
top-10 ids (for the overlap with lexis). Writes OUT/report.json,
OUT/latency.png (gnuplot), OUT/table.md and the per-query latencies
(OUT/<corpus>/<system>-k<K>.lat).

Peers may be restricted per corpus: --peer-corpora NAME,NAME runs Xapian and
FTS5 only on those (lexis runs on every corpus).
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time

try:
    import xapian
except ImportError:       # checked in main() when Xapian is asked for
    xapian = None

# Lucene's 33 English stop words: lexis' default list.
LUCENE_STOP = ("a an and are as at be but by for if in into is it no not of on or such "
               "that the their then there these they this to was will with").split()
K1, B = 0.9, 0.4


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def now():
    return time.perf_counter()


def dir_bytes(path):
    """Apparent size of a file or of every file under a directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def stats_us(lat):
    """mean, p50, p99, max as `lexis bench` computes them (sorted[n/2], sorted[(n-1)*.99])."""
    s = sorted(lat)
    n = len(s)
    if not n:
        return {"mean_us": 0, "p50_us": 0, "p99_us": 0, "max_us": 0}
    return {"mean_us": round(sum(s) / n, 2), "p50_us": round(s[n // 2], 2),
            "p99_us": round(s[int((n - 1) * 0.99)], 2), "max_us": round(s[-1], 2)}


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                yield str(d["_id"]), d.get("title") or "", d.get("text") or ""


def load_queries(path):
    qs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                qs.append((str(q["_id"]), q["text"]))
    return qs


# ---- Xapian -------------------------------------------------------------------------

def xapian_termgen():
    """Analysis as close to lexis' as Xapian allows: Unicode lowercasing and word
    split (Xapian's own), Lucene's 33 stop words dropped (STOP_ALL), every term
    stemmed with the original Porter stemmer, no unstemmed or Z-prefixed
    duplicates (STEM_ALL)."""
    tg = xapian.TermGenerator()
    tg.set_stemmer(xapian.Stem(XAPIAN_STEMMER))
    tg.set_stemming_strategy(xapian.TermGenerator.STEM_ALL)
    stopper = xapian.SimpleStopper()
    for w in LUCENE_STOP:
        stopper.add(w)
    tg.set_stopper(stopper)
    tg.set_stopper_strategy(xapian.TermGenerator.STOP_ALL)
    tg._stopper = stopper                       # keep it alive (SWIG holds a raw pointer)
    return tg


XAPIAN_STEMMER = "porter"
XAPIAN_MIN_NORMLEN = 0.5


def xapian_build(corpus, path, positions):
    shutil.rmtree(path, ignore_errors=True)
    t0 = now()
    db = xapian.WritableDatabase(path, xapian.DB_CREATE_OR_OVERWRITE)
    tg = xapian_termgen()
    index = tg.index_text if positions else tg.index_text_without_positions
    n = 0
    for did, title, text in read_corpus(corpus):
        doc = xapian.Document()
        tg.set_document(doc)
        index(title)
        if positions:
            tg.increase_termpos()
        index(text)
        doc.set_data(json.dumps({"_id": did, "title": title, "text": text}, ensure_ascii=False))
        db.add_document(doc)
        n += 1
    db.commit()
    db.close()
    el = now() - t0
    return {"docs": n, "build_s": round(el, 3), "docs_per_s": round(n / el, 1),
            "size_bytes": dir_bytes(path)}


def xapian_parts(path):
    """Bytes per table: postlist (the inverted index), termlist (per-document
    term lists, which lexis does not keep), docdata (the stored documents), ..."""
    return {f.split(".")[0]: os.path.getsize(os.path.join(path, f))
            for f in sorted(os.listdir(path)) if f.endswith(".glass")}


def xapian_compact(path, out):
    shutil.rmtree(out, ignore_errors=True)
    t0 = now()
    xapian.Database(path).compact(out)
    return {"compact_s": round(now() - t0, 3), "size_compacted_bytes": dir_bytes(out),
            "parts_bytes": xapian_parts(path), "parts_compacted_bytes": xapian_parts(out)}


class XapianSearcher:
    def __init__(self, path):
        self.db = xapian.Database(path)
        self.enq = xapian.Enquire(self.db)
        self.enq.set_weighting_scheme(xapian.BM25Weight(K1, 0, 1, B, XAPIAN_MIN_NORMLEN))
        self.tg = xapian_termgen()

    def search(self, text, k):
        """The timed part: analysis (the indexing analyzer, as lexis does), an
        OP_OR of the terms (a repeated term weighted by its count, as lexis
        counts it), the ranking. Returns the MSet."""
        doc = xapian.Document()
        self.tg.set_document(doc)
        self.tg.index_text_without_positions(text)
        subs = []
        for t in doc.termlist():
            q = xapian.Query(t.term)
            if t.wdf > 1:
                q = xapian.Query(xapian.Query.OP_SCALE_WEIGHT, q, t.wdf)
            subs.append(q)
        self.enq.set_query(xapian.Query(xapian.Query.OP_OR, subs))
        return self.enq.get_mset(0, k)

    def ids(self, mset):
        return [json.loads(m.document.get_data())["_id"] for m in mset]


# ---- SQLite FTS5 --------------------------------------------------------------------

FTS_WORD = re.compile(r"[^\W_]+")
STOPSET = set(LUCENE_STOP)


def fts5_match(text):
    """An OR of the query's words, each quoted (no FTS5 syntax can leak in),
    Lucene's stop words dropped as lexis and Xapian drop them."""
    words = [w for w in FTS_WORD.findall(text.lower()) if w not in STOPSET]
    return " OR ".join('"%s"' % w for w in words)


def fts5_build(corpus, path):
    for p in (path, path + "-journal", path + "-wal"):
        if os.path.exists(p):
            os.remove(p)
    t0 = now()
    con = sqlite3.connect(path)
    con.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, title, text, "
                "tokenize='porter unicode61')")
    n = 0

    def rows():
        nonlocal n
        for r in read_corpus(corpus):
            n += 1
            yield r
    with con:
        con.executemany("INSERT INTO docs(id, title, text) VALUES (?, ?, ?)", rows())
    t1 = now()
    with con:
        con.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    el = now() - t0
    r = {"docs": n, "build_s": round(el, 3), "docs_per_s": round(n / el, 1),
         "optimize_s": round(now() - t1, 3)}
    try:    # docs_data: the inverted index; docs_content: the stored documents
        r["parts_bytes"] = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    except sqlite3.Error:
        pass
    con.close()
    r["size_bytes"] = dir_bytes(path)
    return r


class Fts5Searcher:
    def __init__(self, path):
        self.con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)

    def search(self, text, k):
        """The timed part: building the MATCH string, running the statement to
        the end (bm25() ranking, ORDER BY rank LIMIT k)."""
        m = fts5_match(text)
        if not m:
            return []
        return self.con.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ?",
                                (m, k)).fetchall()

    def ids(self, rows):
        return [self.con.execute("SELECT id FROM docs WHERE rowid = ?", r).fetchone()[0] for r in rows]


SEARCHERS = {"xapian": XapianSearcher, "fts5": Fts5Searcher}


class Budget(Exception):
    pass


def peer_warmup(s, queries, k, budget_s, round_passes):
    """The warm-up pass, in a fixed shuffled order (so that its pace is
    representative early: the query set is ordered by collection). Raises
    Budget when, after 10% of the queries, the warm-up and one round
    (`round_passes` passes) project to more than budget_s. Returns the
    seconds the pass took."""
    order = list(range(len(queries)))
    random.Random(1).shuffle(order)
    t0 = now()
    for i, qi in enumerate(order):
        s.search(queries[qi][1], k)
        if budget_s and (i + 1) * 10 >= len(queries) and (i + 1) % 10 == 0:
            proj = (now() - t0) / (i + 1) * len(queries) * (1 + round_passes)
            if proj > budget_s:
                raise Budget("%d queries in %.1f s: the warm-up and one round would take ~%.0f s "
                             "> budget %.0f s" % (i + 1, now() - t0, proj, budget_s))
    return now() - t0


def peer_pass(s, queries, k, want_ids):
    """One timed pass; per-query microseconds around the engine call."""
    lat, ids = [], []
    for _, text in queries:
        t0 = time.perf_counter_ns()
        res = s.search(text, k)
        lat.append((time.perf_counter_ns() - t0) / 1000.0)
        if want_ids:
            ids.append(s.ids(res))
    return lat, ids


_worker = None


def _worker_init(system, path, k):
    global _worker
    _worker = (SEARCHERS[system](path), k)


def _worker_query(text):
    s, k = _worker
    return len(s.search(text, k))


def peer_qps(system, path, queries, k, procs):
    """All queries once on `procs` processes, one database handle each; the
    clock runs from the first query handed out to the last answer."""
    ctx = mp.get_context("fork")
    with ctx.Pool(procs, initializer=_worker_init, initargs=(system, path, k)) as pool:
        pool.map(_worker_query, ["x"] * procs, chunksize=1)      # processes up, handles open
        texts = [t for _, t in queries]
        t0 = now()
        for _ in pool.imap_unordered(_worker_query, texts, chunksize=4):
            pass
        el = now() - t0
    return round(len(queries) / el, 1)


# ---- lexis --------------------------------------------------------------------------

def run(cmd, **kw):
    log(" ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return n


def lexis_build(a, corpus, idx):
    shutil.rmtree(idx, ignore_errors=True)
    t0 = now()
    run([a.lexis, "build", idx, "--corpus", corpus, "--quiet"])
    el = now() - t0
    ndocs = count_lines(corpus)
    r = {"docs": ndocs, "build_s": round(el, 3), "docs_per_s": round(ndocs / el, 1),
         "size_bytes": dir_bytes(idx)}
    try:
        ins = json.loads(run([a.lexis, "inspect", idx, "--json"], stdout=subprocess.PIPE,
                             text=True).stdout)
        r["parts_bytes"] = {"postings": ins.get("postings_bytes"), "stored_docs": ins.get("docs_bytes"),
                            "data.mdb": ins.get("file_bytes")}
        r["postings"] = ins.get("postings")
    except (subprocess.CalledProcessError, ValueError):
        pass
    return r


def lexis_round(a, idx, queries_path, lats):
    """`lexis bench` at k=10 (with --threads: queries/s) and k=1000; each runs
    its own warm-up pass. Then the per-query latencies (bench-lexis-lat, the
    same loop) for the plot. Returns {top10: stats, top1000: stats, qps}."""
    r = {}
    for k in (10, 1000):
        cmd = [a.lexis, "bench", idx, "--queries", queries_path, "-k", str(k), "--algo", "auto",
               "--repeat", "1", "--json"]
        if k == 10:
            cmd += ["--threads", str(a.threads)]
        out = json.loads(run(cmd, stdout=subprocess.PIPE, text=True).stdout)
        r["top%d" % k] = {x: out[x] for x in ("mean_us", "p50_us", "p99_us", "max_us", "avg_scored")}
        if k == 10:
            r["qps"] = out["qps"]
        if a.lexis_lat:
            lines = run([a.lexis_lat, idx, queries_path, "-k", str(k)], stdout=subprocess.PIPE,
                        text=True).stdout.splitlines()
            lats[k] += [float(x.split("\t")[1]) for x in lines]
    return r


def lexis_top10(a, idx, queries_path):
    trec = run([a.lexis, "run", idx, "--queries", queries_path, "-k", "10"], stdout=subprocess.PIPE,
               text=True).stdout
    top = {}
    for line in trec.splitlines():
        qid, _, did, *_ = line.split()
        top.setdefault(qid, []).append(did)
    return top


def write_lat(outdir, system, k, lat):
    s = sorted(lat)
    with open(os.path.join(outdir, "%s-k%d.lat" % (system, k)), "w") as f:
        for i, v in enumerate(s):
            f.write("%.3f\t%.6f\n" % (v, (i + 1) / len(s)))


def peer_build(a, system, name, corpus, path):
    log("%s: building %s" % (name, system))
    if system == "xapian":
        r = xapian_build(corpus, path, positions=False)
        r.update(xapian_compact(path, path + ".compact"))
        shutil.rmtree(path + ".compact", ignore_errors=True)
        if a.xapian_positions and r["docs"] <= a.positions_max_docs:
            pos = path + ".pos"
            log("%s: building xapian with positions" % name)
            p = xapian_build(corpus, pos, positions=True)
            r["with_positions"] = {"build_s": p["build_s"], "docs_per_s": p["docs_per_s"],
                                   "size_bytes": p["size_bytes"]}
            shutil.rmtree(pos, ignore_errors=True)
        elif a.xapian_positions:
            r["with_positions"] = "not built (more than %d documents)" % a.positions_max_docs
        r["setup"] = ("TermGenerator: Stem('%s'), STEM_ALL, Lucene's 33 stop words (STOP_ALL), "
                      "index_text_without_positions, the document stored as data; "
                      "BM25Weight(k1=%g, k2=0, k3=1, b=%g, min_normlen=%g); OP_OR of the query's "
                      "terms analyzed by the same TermGenerator (a repeated term: OP_SCALE_WEIGHT "
                      "by its count); get_mset(0, k)" % (XAPIAN_STEMMER, K1, B, XAPIAN_MIN_NORMLEN))
    else:
        r = fts5_build(corpus, path)
        r["setup"] = ("fts5(id UNINDEXED, title, text, tokenize='porter unicode61'), one "
                      "transaction + 'optimize'; MATCH '\"w1\" OR \"w2\" ...' (Lucene stop words "
                      "dropped), ORDER BY rank (bm25(), k1=1.2, b=0.75 fixed in FTS5) LIMIT k")
    return r


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarize(rounds):
    """The median over rounds of each figure of a round."""
    out = {}
    for k in ("top10", "top1000"):
        out[k] = {m: round(median([r[k][m] for r in rounds]), 2) for m in rounds[0][k]}
    out["qps"] = round(median([r["qps"] for r in rounds]), 1)
    out["rounds"] = rounds
    return out


def bench_corpus(a, name, corpus, queries, systems, peer_ok):
    """Builds every system, then R rounds of: each system in turn, top-10
    pass, top-1000 pass, queries/s. Interleaving the systems exposes them to
    the same background load; each figure is the median over the rounds."""
    outdir = os.path.join(a.out, name)
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    c = {"file": corpus, "systems": {}, "skipped": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
         "loadavg_start": os.getloadavg()}
    paths = {"lexis": os.path.join(outdir, "lexis.idx"), "xapian": os.path.join(outdir, "xapian.idx"),
             "fts5": os.path.join(outdir, "fts5.db")}
    if "lexis" in systems:
        log("%s: building lexis" % name)
        c["systems"]["lexis"] = lexis_build(a, corpus, paths["lexis"])
    peers = [p for p in ("xapian", "fts5") if p in systems and peer_ok]
    for p in peers:
        c["systems"][p] = peer_build(a, p, name, corpus, paths[p])
    c["docs"] = next(iter(c["systems"].values()))["docs"]

    searchers, tops, lats, rounds = {}, {}, {}, {}
    nrounds = {"lexis": a.rounds}
    round_passes = 2 + 1.0 / max(1, a.threads)       # top-10, top-1000, queries/s
    for p in peers:
        s = SEARCHERS[p](paths[p])
        log("%s: %s warm-up pass (k=1000)" % (name, p))
        try:
            t = peer_warmup(s, queries, 1000, a.peer_budget_s, round_passes)
            searchers[p] = s
            nrounds[p] = a.rounds
            if a.peer_budget_s:     # as many rounds as the budget holds, at least one
                fit = int((a.peer_budget_s - t) / (t * round_passes))
                nrounds[p] = max(1, min(a.rounds, fit))
            if nrounds[p] < a.rounds:
                log("%s: %s: warm-up took %.0f s: %d round(s) within the budget"
                    % (name, p, t, nrounds[p]))
        except Budget as e:
            log("%s: %s queries skipped: %s" % (name, p, e))
            c["skipped"][p] = "queries not measured: " + str(e)
    active = [x for x in ("lexis", "xapian", "fts5") if x == "lexis" and "lexis" in systems
              or x in searchers]
    for x in active:
        lats[x] = {10: [], 1000: []}
        rounds[x] = []
    for rnd in range(a.rounds):
        for x in active:
            if rnd >= nrounds[x]:
                continue
            log("%s: round %d/%d: %s" % (name, rnd + 1, nrounds[x], x))
            if x == "lexis":
                rounds[x].append(lexis_round(a, paths[x], a.queries, lats[x]))
                continue
            r = {}
            for k in (10, 1000):
                lat, ids = peer_pass(searchers[x], queries, k, want_ids=(k == 10 and rnd == 0))
                lats[x][k] += lat
                r["top%d" % k] = stats_us(lat)
                if ids:
                    tops[x] = {qid: i for (qid, _), i in zip(queries, ids)}
            r["qps"] = peer_qps(x, paths[x], queries, 10, a.threads)
            rounds[x].append(r)
    for x in active:
        c["systems"][x].update(summarize(rounds[x]))
        c["systems"][x]["threads"] = a.threads
        for k in (10, 1000):
            write_lat(outdir, x, k, lats[x][k])
            c["systems"][x]["top%d" % k]["pooled"] = stats_us(lats[x][k])
    if "lexis" in active:
        tops["lexis"] = lexis_top10(a, paths["lexis"], a.queries)
    searchers.clear()
    c["loadavg_end"] = os.getloadavg()
    if not a.keep_indexes:
        for x, p in paths.items():
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    if "lexis" in active:
        c["ratios"] = {p: ratios(c["systems"]["lexis"], c["systems"][p])
                       for p in ("xapian", "fts5") if p in c["systems"]}
        qids = [q for q, _ in queries]
        c["overlap_top10"] = {"lexis_" + p: overlap(tops["lexis"], tops[p], qids)
                              for p in ("xapian", "fts5") if p in tops}
    return c


def overlap(a, b, qids):
    """Mean over queries of |A n B| / min(10, max(|A|, |B|)); queries where
    both are empty are left out."""
    tot, n = 0.0, 0
    for q in qids:
        x, y = a.get(q, [])[:10], b.get(q, [])[:10]
        d = min(10, max(len(x), len(y)))
        if d:
            tot += len(set(x) & set(y)) / d
            n += 1
    return round(tot / n, 4) if n else None


def ratios(lx, peer):
    """Latency: peer / lexis (> 1: lexis faster). docs/s and queries/s: lexis /
    peer (> 1: lexis faster). Size: lexis / peer (< 1: lexis smaller)."""
    def div(x, y):
        return round(x / y, 2) if x and y else None
    r = {"build_docs_per_s": div(lx["docs_per_s"], peer["docs_per_s"]),
         "size": div(lx["size_bytes"], peer["size_bytes"]),
         "qps": div(lx.get("qps"), peer.get("qps"))}
    for k in (10, 1000):
        for m in ("mean_us", "p50_us", "p99_us"):
            if "top%d" % k in peer:
                r["top%d_%s" % (k, m[:-3])] = div(peer["top%d" % k][m], lx["top%d" % k][m])
    if "size_compacted_bytes" in peer:
        r["size_vs_compacted"] = div(lx["size_bytes"], peer["size_compacted_bytes"])
    if isinstance(peer.get("with_positions"), dict):
        r["size_vs_with_positions"] = div(lx["size_bytes"], peer["with_positions"]["size_bytes"])
    return r


# ---- report -------------------------------------------------------------------------

def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    m = {"cpu": model, "cores": os.cpu_count(), "memory_bytes": mem,
         "kernel": platform.release(), "python": platform.python_version(),
         "sqlite": sqlite3.sqlite_version}
    if xapian:
        m["xapian"] = xapian.version_string()
    try:
        with open("/etc/debian_version") as f:
            m["debian"] = f.read().strip()
    except OSError:
        pass
    return m


def fmt_ms(us):
    return "%.3f" % (us / 1000.0) if us < 10000 else "%.1f" % (us / 1000.0)


def mb(b):
    return "%.1f MB" % (b / 1e6)


def table(rep):
    """Markdown: figures per system, then lexis' ratios to each peer."""
    def x(v):
        return "%sx" % v if v is not None else "-"
    lines = ["| corpus | system | build docs/s | index size | top-10 mean / p50 / p99 (ms) | "
             "top-1000 mean (ms) | QPS (%d cores) |" % rep["threads"],
             "|---|---|---|---|---|---|---|"]
    for name, c in rep["corpora"].items():
        for sysname in ("lexis", "xapian", "fts5"):
            s = c["systems"].get(sysname)
            if not s:
                continue
            size = mb(s["size_bytes"])
            if sysname == "xapian":
                extra = []
                if "size_compacted_bytes" in s:
                    extra.append("compacted %s" % mb(s["size_compacted_bytes"]))
                if isinstance(s.get("with_positions"), dict):
                    extra.append("with positions %s" % mb(s["with_positions"]["size_bytes"]))
                if extra:
                    size += " (" + ", ".join(extra) + ")"
            if "top10" in s:
                t10, t1k = s["top10"], s["top1000"]
                lat = "%s / %s / %s | %s | %s" % (
                    fmt_ms(t10["mean_us"]), fmt_ms(t10["p50_us"]), fmt_ms(t10["p99_us"]),
                    fmt_ms(t1k["mean_us"]), format(round(s["qps"]), ","))
            else:
                lat = "not measured | - | -"
            lines.append("| %s | %s | %s | %s | %s |" % (
                "%s (%s docs)" % (name, format(c["docs"], ",")), sysname,
                format(round(s["docs_per_s"]), ","), size, lat))
    lines += ["", "| corpus | lexis vs | build docs/s | size | top-10 mean | p50 | p99 | "
              "top-1000 mean | QPS | top-10 overlap |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in rep["corpora"].items():
        for peer, r in c.get("ratios", {}).items():
            size = "%.2fx" % r["size"] if r["size"] else "-"
            if r.get("size_vs_compacted"):
                size += " (%.2fx compacted)" % r["size_vs_compacted"]
            ov = c.get("overlap_top10", {}).get("lexis_" + peer)
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, peer, x(r["build_docs_per_s"]), size, x(r.get("top10_mean")),
                x(r.get("top10_p50")), x(r.get("top10_p99")), x(r.get("top1000_mean")),
                x(r["qps"]), "%.3f" % ov if ov is not None else "-"))
    lines += ["", "| corpus | system | inverted index | stored documents | other | total |",
              "|---|---|---|---|---|---|"]
    for name, c in rep["corpora"].items():
        for sysname, s in c["systems"].items():
            for label, parts in parts_rows(sysname, s):
                inv, docs = parts
                total = s["size_compacted_bytes"] if "compacted" in label else s["size_bytes"]
                lines.append("| %s | %s | %s | %s | %s | %s |" % (
                    name, label, mb(inv), mb(docs), mb(total - inv - docs), mb(total)))
    return "\n".join(lines) + "\n"


def parts_rows(sysname, s):
    """(label, (inverted index bytes, stored documents bytes)) for the size table."""
    p = s.get("parts_bytes")
    if not p:
        return []
    if sysname == "lexis" and p.get("postings") is not None:
        return [("lexis", (p["postings"], p["stored_docs"]))]
    if sysname == "xapian" and "postlist" in p:
        rows = [("xapian", (p["postlist"], p.get("docdata", 0)))]
        pc = s.get("parts_compacted_bytes")
        if pc and "postlist" in pc:
            rows.append(("xapian compacted", (pc["postlist"], pc.get("docdata", 0))))
        return rows
    if sysname == "fts5" and "docs_data" in p:
        return [("fts5", (p["docs_data"], p.get("docs_content", 0)))]
    return []


def plot(rep, out):
    """CDF of per-query latency (log x), one panel per corpus, solid top-10,
    dashed top-1000."""
    names = [n for n, c in rep["corpora"].items()
             if os.path.exists(os.path.join(out, n, "lexis-k10.lat"))]
    if not names or not shutil.which("gnuplot"):
        log("no gnuplot or no latencies: no plot")
        return None
    colors = {"lexis": "#d62728", "xapian": "#1f77b4", "fts5": "#2ca02c"}
    g = ["set terminal pngcairo size 1000,%d font 'sans,10'" % (380 * len(names)),
         "set output '%s'" % os.path.join(out, "latency.png"),
         "set multiplot layout %d,1" % len(names),
         "set logscale x", "set format x '10^{%L}'", "set grid",
         "set xlabel 'query latency (microseconds, log scale; single thread)'",
         "set ylabel 'fraction of queries'", "set yrange [0:1]", "set key right bottom"]
    for n in names:
        c = rep["corpora"][n]
        g.append("set title '%s: %s documents, %d queries x %d rounds (solid top-10, dashed "
                 "top-1000)'" % (n, format(c["docs"], ","), rep["queries"]["n"], rep["rounds"]))
        parts = []
        for sysname in ("lexis", "xapian", "fts5"):
            for k, dt in ((10, 1), (1000, 2)):
                f = os.path.join(out, n, "%s-k%d.lat" % (sysname, k))
                if os.path.exists(f) and sysname in c["systems"]:
                    parts.append("'%s' using 1:2 with lines lw 2 dt %d lc rgb '%s' title '%s k=%d'"
                                 % (f, dt, colors[sysname], sysname, k))
        g.append("plot " + ", \\\n     ".join(parts))
    g.append("unset multiplot")
    script = os.path.join(out, "latency.gp")
    with open(script, "w") as f:
        f.write("\n".join(g) + "\n")
    subprocess.run(["gnuplot", script], check=True)
    return os.path.join(out, "latency.png")


def main():
    global XAPIAN_STEMMER, XAPIAN_MIN_NORMLEN
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lexis", required=True)
    ap.add_argument("--lexis-lat", help="per-query latency helper (for the plot)")
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--systems", default="lexis,xapian,fts5")
    ap.add_argument("--peer-corpora", help="run Xapian/FTS5 only on these corpora (default all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-xapian-positions", dest="xapian_positions", action="store_false",
                    help="skip the second Xapian build (with positions, for its size)")
    ap.add_argument("--xapian-stemmer", default=XAPIAN_STEMMER)
    ap.add_argument("--xapian-min-normlen", type=float, default=XAPIAN_MIN_NORMLEN)
    ap.add_argument("--positions-max-docs", type=int, default=1000000,
                    help="build Xapian with positions only up to this many documents")
    ap.add_argument("--rounds", type=int, default=3,
                    help="timed rounds (systems interleaved); figures are medians over rounds")
    ap.add_argument("--peer-budget-s", type=float, default=900,
                    help="query time allowed to a peer per corpus: it runs as many rounds as "
                         "fit (at least one), or is skipped when its warm-up pass projects the "
                         "warm-up and one round to take longer (0: no limit)")
    ap.add_argument("--keep-indexes", action="store_true")
    ap.add_argument("--command", default="", help="the command line, recorded in the report")
    ap.add_argument("--merge", action="store_true",
                    help="add to an existing OUT/report.json (corpora run now replace theirs)")
    a = ap.parse_args()
    XAPIAN_STEMMER, XAPIAN_MIN_NORMLEN = a.xapian_stemmer, a.xapian_min_normlen
    systems = a.systems.split(",")
    if "xapian" in systems and xapian is None:
        sys.exit("bench: python3-xapian is missing (apt-get install python3-xapian)")
    peer_corpora = a.peer_corpora.split(",") if a.peer_corpora else None
    os.makedirs(a.out, exist_ok=True)
    queries = load_queries(a.queries)
    rep_path = os.path.join(a.out, "report.json")
    rep = None
    if a.merge and os.path.exists(rep_path):
        with open(rep_path) as f:
            rep = json.load(f)
    if not rep:
        rep = {"corpora": {}}
    rep.update({"machine": machine(), "threads": a.threads, "command": a.command,
                "rounds": a.rounds,
                "queries": {"file": a.queries, "n": len(queries),
                            "keyword": sum(1 for q, _ in queries if q.startswith("kw:"))},
                "ratio_definitions": ratios.__doc__.strip()})
    try:
        rep["lexis_commit"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True).stdout.strip() or None
    except OSError:
        pass
    for spec in a.corpus:
        name, _, corpus = spec.partition("=")
        peer_ok = peer_corpora is None or name in peer_corpora
        rep["corpora"][name] = bench_corpus(a, name, corpus, queries, systems, peer_ok)
        with open(rep_path, "w") as f:
            json.dump(rep, f, indent=1)
        log("%s done" % name)
    rep["plot"] = plot(rep, a.out)
    with open(rep_path, "w") as f:
        json.dump(rep, f, indent=1)
    t = table(rep)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(t)
    print(t)


if __name__ == "__main__":
    main()

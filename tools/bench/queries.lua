-- queries.lua: wrk script for lexis serve: POST /search, cycling through
-- real queries (one JSON body a line, made by serve-wrk.sh from
-- ../shared/data/*/queries.jsonl). Each wrk thread starts at a different
-- place in the list. At the end it prints one machine-readable line:
--   RESULT requests=N duration_s=S rps=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--          errors=E connect=.. read=.. write=.. status=.. timeout=..
-- (status counts responses with a status >= 400).
-- usage: wrk -t T -c C -d D --latency -s tools/bench/queries.lua URL -- BODIES
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path = args[1] or "build/bench-serve/bodies.jsonl"
  bodies = {}
  for line in io.lines(path) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  if #bodies == 0 then error("no request bodies in " .. path) end
  i = ((id or 0) * 997) % #bodies
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/search", headers, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "errors=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout))
end

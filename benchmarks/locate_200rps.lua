-- wrk script: GET /api/v1/locate at random points of Yichang's central districts, about
-- RATE requests/s in all (each connection waits CONNS/RATE s between its requests).
-- wrk -t2 -c10 -d20s --latency -s benchmarks/locate_200rps.lua http://127.0.0.1:8000
local token = os.getenv("GRIDMAP_TOKEN") or ""
local rate = tonumber(os.getenv("RATE") or "200")
local conns = tonumber(os.getenv("CONNS") or "10")
local counts = {}

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(id)
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  local lon = 111.20 + math.random() * 0.22   -- 西陵 / 伍家岗 core
  local lat = 30.62 + math.random() * 0.10
  return wrk.format("GET", string.format("/api/v1/locate?lon=%.6f&lat=%.6f", lon, lat))
end

function delay()
  return 1000 * conns / rate
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("requests %d in %.1f s = %.1f req/s; errors: connect %d, read %d, write %d, status %d, timeout %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
  for _, p in ipairs({50, 90, 95, 99, 99.9}) do
    io.write(string.format("p%s %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max %.2f ms\n", latency.max / 1000))
end

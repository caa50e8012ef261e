-- wrk script of the harness (bench/harness/drivers.py): token auth, and one parseable result line.
-- The token comes from the environment (BENCH_TOKEN), never from the command line.
-- With BENCH_PATHS (a file, one path a line) each thread walks those paths from its own
-- point (drivers.wrk(..., paths_file=...)) instead of requesting the URL's path.

wrk.headers["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN")
wrk.headers["Accept"] = "application/json"
-- A conditional read (BENCH_IF_NONE_MATCH: an ETag the server gave): the 304 path.
if os.getenv("BENCH_IF_NONE_MATCH") then
   wrk.headers["If-None-Match"] = os.getenv("BENCH_IF_NONE_MATCH")
end

if os.getenv("BENCH_PATHS") then
   local paths = {}
   local at = 0
   local threads = 0

   function setup(thread)
      thread:set("offset", threads * 997)  -- each thread starts elsewhere in the list
      threads = threads + 1
   end

   function init(args)
      for line in io.lines(os.getenv("BENCH_PATHS")) do
         paths[#paths + 1] = line
      end
      at = offset % #paths
   end

   function request()
      at = at % #paths + 1
      return wrk.format("GET", paths[at])
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"rps\": %.2f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, " ..
      "\"mean_ms\": %.3f, \"max_ms\": %.3f, \"errors\": {\"connect\": %d, \"read\": %d, " ..
      "\"write\": %d, \"status\": %d, \"timeout\": %d}}\n",
      summary.requests, summary.duration, summary.bytes,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.status, e.timeout))
end

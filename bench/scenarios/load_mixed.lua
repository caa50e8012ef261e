-- wrk script of the load_mixed benchmark (bench/scenarios/load_mixed_stack.py): one endpoint group per wrk process.
--
-- Environment (never the command line): LOAD_TOKEN (may be empty: no Authorization),
-- LOAD_SPEC (a file of requests, one a line: METHOD<TAB>path<TAB>body), LOAD_ROWS
-- (ids TX-00000001..TX-<rows> exist). `{TXID}` in a path or body becomes a random
-- stored transaction id. Requests are taken in turn from the spec.
-- Per thread it counts responses by status and by (second, status); done() sums the
-- threads and prints one line `BENCH_RESULT {json}` with latency percentiles.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local function read_spec(path)
   local out = {}
   for line in io.lines(path) do
      if line ~= "" then
         local method, p, body = line:match("^([^\t]+)\t([^\t]+)\t?(.*)$")
         table.insert(out, {method = method, path = p, body = body ~= "" and body or nil})
      end
   end
   return out
end

function init(args)
   math.randomseed(os.time() * 97 + (tid or 0) * 7919)
   rows = tonumber(os.getenv("LOAD_ROWS") or "1000")
   spec = read_spec(os.getenv("LOAD_SPEC"))
   counter = (tid or 0) * 7
   counts = {}
   bins = {}
   samples = {}
   nsamples = 0
   local token = os.getenv("LOAD_TOKEN") or ""
   headers = {["Accept"] = "application/json"}
   if token ~= "" then
      headers["Authorization"] = "Token " .. token
   end
end

local function txid(s)
   if s == nil then return nil end
   return (s:gsub("{TXID}", function() return string.format("TX-%08d", math.random(1, rows)) end))
end

function request()
   counter = counter + 1
   local r = spec[(counter % #spec) + 1]
   local h = headers
   if r.body then
      h = {}
      for k, v in pairs(headers) do h[k] = v end
      h["Content-Type"] = "application/json"
   end
   return wrk.format(r.method, txid(r.path), h, txid(r.body))
end

function response(status, hdrs, body)
   counts[status] = (counts[status] or 0) + 1
   local k = tostring(os.time()) .. ":" .. tostring(status)
   bins[k] = (bins[k] or 0) + 1
   if (status < 200 or status > 299) and nsamples < 8 then
      nsamples = nsamples + 1
      samples[nsamples] = tostring(status) .. " " .. string.sub(body or "", 1, 200)
   end
end

local function esc(s)
   return (tostring(s):gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
      return " "
   end))
end

local function obj(t)
   local parts = {}
   for k, v in pairs(t) do
      table.insert(parts, string.format('"%s": %d', esc(k), v))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local all_counts, all_bins, all_samples = {}, {}, {}
   for _, thread in ipairs(threads) do
      local c = thread:get("counts") or {}
      for k, v in pairs(c) do all_counts[tostring(k)] = (all_counts[tostring(k)] or 0) + v end
      local b = thread:get("bins") or {}
      for k, v in pairs(b) do all_bins[k] = (all_bins[k] or 0) + v end
      local s = thread:get("samples") or {}
      for _, v in ipairs(s) do
         if #all_samples < 8 then table.insert(all_samples, '"' .. esc(v) .. '"') end
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f, " ..
      "\"max_ms\": %.3f, \"socket_errors\": {\"connect\": %d, \"read\": %d, " ..
      "\"write\": %d, \"timeout\": %d}, \"status_errors\": %d, \"statuses\": %s, " ..
      "\"bins\": %s, \"samples\": [%s]}\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.timeout, e.status,
      obj(all_counts), obj(all_bins), table.concat(all_samples, ", ")))
end

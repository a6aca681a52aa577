-- wrk script for POST /v1/decide, or any POST route with JSON bodies (bench/load.sh).
--
-- Environment:
--   URL_PATH  the route to POST to (default /v1/decide; e.g. /ofrep/v1/evaluate/flags/bench-login
--             with OFREP bodies)
--   BODIES  file with one JSON decide body per line (bench/gen.py bodies: varied user keys,
--           device ids, IPs in the 1,000 CIDRs / known to the GeoIP test database / unknown,
--           platforms, app versions, session tokens, valid sticky cookies or none)
--   TOKEN   the bearer token
--
-- Every thread pre-formats all requests once and cycles through them from its own offset, so
-- the per-request Lua cost is one table index. No response() callback (it would make wrk
-- parse every response into Lua); wrk counts non-2xx answers in errors.status by itself.
-- done() prints one machine-readable RESULT line with percentiles in microseconds.

local bodies_path = os.getenv("BODIES") or error("set BODIES to the bodies file")
local token = os.getenv("TOKEN") or error("set TOKEN to the bearer token")
local url_path = os.getenv("URL_PATH") or "/v1/decide"

local requests = {}
local count = 0
local index = 0

local thread_counter = 0
function setup(thread)
   thread:set("offset", thread_counter * 7919)
   thread_counter = thread_counter + 1
end

function init(args)
   local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
   }
   for line in io.lines(bodies_path) do
      if #line > 0 then
         count = count + 1
         requests[count] = wrk.format("POST", url_path, headers, line)
      end
   end
   if count == 0 then
      error("no bodies in " .. bodies_path)
   end
   index = (offset or 0) % count
end

function request()
   index = index + 1
   if index > count then
      index = 1
   end
   return requests[index]
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d "
         .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end

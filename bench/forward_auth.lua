-- wrk script for forward-auth (SPEC §11): GET /v1/forward-auth/<rollout> with the headers a
-- proxy forwards (bench/load.sh).
--
-- Environment:
--   URL_PATH  the route (e.g. /v1/forward-auth/bench-login)
--   HEADERS   file with one request per line: tab-separated `Name: value` headers
--             (bench/gen.py forward-auth: user keys, forwarded addresses, countries, platforms,
--             app versions, session tokens, sticky cookies, as the decide bodies have them)
--   TOKEN     the proxy's token, sent as X-Switchyard-Token
--
-- As bench/decide.lua: every request is formatted once; done() prints one RESULT line.

local headers_path = os.getenv("HEADERS") or error("set HEADERS to the headers file")
local token = os.getenv("TOKEN") or error("set TOKEN to the token")
local url_path = os.getenv("URL_PATH") or error("set URL_PATH to the forward-auth route")

local requests = {}
local count = 0
local index = 0

local thread_counter = 0
function setup(thread)
   thread:set("offset", thread_counter * 7919)
   thread_counter = thread_counter + 1
end

function init(args)
   for line in io.lines(headers_path) do
      if #line > 0 then
         local headers = { ["X-Switchyard-Token"] = token }
         for field in string.gmatch(line, "[^\t]+") do
            local name, value = string.match(field, "^([^:]+): (.*)$")
            if name == nil then
               error("not a `Name: value` header: " .. field)
            end
            headers[name] = value
         end
         count = count + 1
         requests[count] = wrk.format("GET", url_path, headers)
      end
   end
   if count == 0 then
      error("no requests in " .. headers_path)
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

-- wrk script: every request carries `Authorization: Bearer <token>`, the tokens
-- taken in turn from a file (one a line). A line `TOKEN /some/path` also names the
-- path of that request, appended to the URL's path (scenario 8: each tenant's rule).
--
-- Environment:
--   BENCH_TOKENS      the token file (required)
--   BENCH_LIMIT       use only the first N tokens of the file (default: all)
--   BENCH_STOP_AFTER  stop after this many responses (one pass over a token set);
--                     the thread stops, but wrk's main thread sleeps out -d, so
--   BENCH_DONE_FILE   is created then: the caller sends wrk SIGINT on seeing it
--                     (wrk then prints its results and exits at once)
--   BENCH_CLOSE=1     send `Connection: close`: a new connection for every request
--                     (NGINX's auth_request without upstream keep-alive)
--   BENCH_STATUS_OUT  write "STATUS COUNT" lines to this file at the end (bench/run
--                     sets it on warm-up runs only, to prove every answer was the
--                     expected one without taxing measured runs with a response hook)
--
-- A one-token file is sent as wrk's static request (no Lua call per request: the
-- load generator is as cheap as it can be, which matters most against the fastest
-- servers); several tokens are formatted once, in init, and rotated by request().

local file = os.getenv("BENCH_TOKENS") or error("BENCH_TOKENS is not set")
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0")
local status_out = os.getenv("BENCH_STATUS_OUT")
local done_file = os.getenv("BENCH_DONE_FILE")
if os.getenv("BENCH_CLOSE") == "1" then wrk.headers["Connection"] = "close" end

local first, second
do
  local f = assert(io.open(file))
  first = f:read("*l")
  second = f:read("*l")
  f:close()
end
if not first or first == "" then error("no tokens in " .. file) end
local single = limit == 1 or not second or second == ""

-- "TOKEN" or "TOKEN /path" -> token, path (wrk.path with a trailing / dropped, + /path)
local function split(line)
  local tok, suffix = line:match("^(%S+) (%S+)$")
  if not tok then return line, wrk.path end
  return tok, wrk.path:gsub("/$", "") .. suffix
end

if single then
  local tok, suffix = first:match("^(%S+) (%S+)$")
  if tok then
    wrk.headers["Authorization"] = "Bearer " .. tok
    wrk.path = (wrk.path or "/"):gsub("/$", "") .. suffix
  else
    wrk.headers["Authorization"] = "Bearer " .. first
  end
else
  local requests = {}
  local n = 0
  local i = 0

  -- init runs after wrk has set its Host header (wrk.format needs it).
  function init(args)
    for line in io.lines(file) do
      if line ~= "" then
        local tok, path = split(line)
        requests[#requests + 1] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tok })
        if limit > 0 and #requests >= limit then break end
      end
    end
    n = #requests
  end

  function request()
    i = i + 1
    if i > n then i = 1 end
    return requests[i]
  end
end

if stop_after > 0 or status_out then
  counts = {} -- global: done() reads it with thread:get()
  local seen = 0
  function response(status, headers, body)
    local k = tostring(status)
    counts[k] = (counts[k] or 0) + 1
    seen = seen + 1
    if stop_after > 0 and seen == stop_after then
      if done_file then assert(io.open(done_file, "w")):close() end
      wrk.thread:stop()
    end
  end
end

-- setup() and done() run in wrk's main environment, apart from the threads'.
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  if not status_out then return end
  local f = assert(io.open(status_out, "w"))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts") or {}) do
      f:write(k .. " " .. v .. "\n")
    end
  end
  f:close()
end

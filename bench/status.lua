-- wrk script for bench/dashboard.py: counts answers other than 200 across all threads, so a
-- redirect to the login page (wrk itself only flags 4xx and 5xx) shows as a failure.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("bad")
  end
  io.write(string.format("non-200: %d\n", total))
end

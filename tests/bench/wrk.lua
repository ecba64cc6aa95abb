-- wrk's requests: the pre-signed pool that `agreements bench --write-wrk FILE` wrote, sent round
-- robin (an independent load generator to check `agreements bench`'s figures against).
--
--   agreements bench ... --write-wrk /tmp/pool.txt
--   wrk -t1 -c16 -d10s -s tests/bench/wrk.lua http://127.0.0.1:8080 -- /tmp/pool.txt
--
-- Each line of FILE: path and query, a tab, the Content-Type, a tab, the form body.

local requests = {}
local next_index = 0

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s wrk.lua URL -- FILE (written by agreements bench --write-wrk)")
  end
  for line in io.lines(file) do
    local target, content_type, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    if target ~= nil then
      requests[#requests + 1] = wrk.format("POST", target, { ["Content-Type"] = content_type }, body)
    end
  end
  if #requests == 0 then
    error("no requests in " .. file)
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

-- wrk script: POST the bodies of the file named by $BENCH_BODIES (one JSON body per line),
-- in turn, to $BENCH_PATH (default /domains).
local path = os.getenv("BENCH_PATH") or "/domains"
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  bodies[#bodies + 1] = line
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n % #bodies + 1
  return wrk.format(nil, path, nil, bodies[n])
end

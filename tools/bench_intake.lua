-- bench_intake.lua -- wrk script for `tools/bench intake`: POST /v3/mail/send
-- with one personalization per request, each to its own address.
--
--   WARMUP_TOKEN=... wrk -t2 -c64 -d10s -s tools/bench_intake.lua http://127.0.0.1:PORT
--
-- Answers other than 202 are counted by wrk as "Non-2xx or 3xx responses"
-- only when they are not 2xx; done() also prints the 202 count per thread.

local token = os.getenv("WARMUP_TOKEN") or ""
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	thread_id = id or 0
	wrk.method = "POST"
	wrk.path = "/v3/mail/send"
	wrk.headers["Authorization"] = "Bearer " .. token
	wrk.headers["Content-Type"] = "application/json"
end

local head = '{"personalizations":[{"to":[{"email":"u'
local tail = '@example.com"}]}],"from":{"email":"news@example.org"},' ..
	'"subject":"Bench","content":[{"type":"text/plain","value":"Hello from the intake benchmark."}]}'

function request()
	counter = counter + 1
	return wrk.format(nil, nil, nil, head .. thread_id .. "-" .. counter .. tail)
end

accepted = 0
function response(status, headers, body)
	if status == 202 then
		accepted = accepted + 1
	end
end

function done(summary, latency, requests)
	local total = 0
	for _, t in ipairs(threads) do
		total = total + (t:get("accepted") or 0)
	end
	io.write(string.format("bench_intake: %d answered 202 in %.2f s: %.0f accepted/s; " ..
		"latency p50 %.2f ms, p99 %.2f ms\n", total, summary.duration / 1e6,
		total / (summary.duration / 1e6), latency:percentile(50) / 1000,
		latency:percentile(99) / 1000))
end

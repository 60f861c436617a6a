-- The webhook's resend storm for wrk: one Alertmanager delivery, posted over and over.
-- After the first, every post is a resend answered from the in-memory resend filter.
--
--   WRK_BODY_FILE=delivery.json WRK_TOKEN=<webhook token> \
--     wrk -t2 -c64 -d10s -s benches/wrk/webhook.lua http://127.0.0.1:9099/api/v1/alertmanager
--
-- benches/wrk_compare.rs writes the body file and sets both variables.

local path = os.getenv("WRK_BODY_FILE") or error("WRK_BODY_FILE: the delivery to post")
local token = os.getenv("WRK_TOKEN") or error("WRK_TOKEN: a token with the webhook role")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

-- wrk script: POST the same body bytes the other generators send.
-- Environment: BODY_FILE (required), CONTENT_TYPE, HEADER_LEN (sets Inference-Header-Content-Length).
local f = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
local hl = os.getenv("HEADER_LEN")
if hl and hl ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = hl
end

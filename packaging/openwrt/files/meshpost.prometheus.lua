-- meshpost collector for prometheus-node-exporter-lua (OpenWrt).
--
-- Installed as /usr/lib/lua/prometheus-collectors/meshpost.lua; the
-- exporter loads every collector there and calls scrape(), which uses the
-- exporter's global metric(name, type, labels, value) to print. This one
-- passes on what `meshpost metrics` prints (Prometheus text, every name
-- starting with meshpost_) and adds meshpost_up: 1 when the daemon
-- answered, 0 when it did not. It changes nothing on the router.

local function scrape()
  local bin = os.getenv("MESHPOST_BIN") or "/usr/bin/meshpost"
  local p = io.popen(bin .. " metrics 2>/dev/null")
  local answered = false
  local current = nil
  if p then
    for line in p:lines() do
      local name, mtype = line:match("^# TYPE (meshpost_[%w_]+) (%a+)$")
      if name then
        current = { name = name, out = metric(name, mtype) }
      elseif not line:match("^#") then
        local n, value = line:match("^(meshpost_[%w_]+) (%S+)$")
        if n and current and n == current.name then
          current.out(nil, value)
          answered = true
        end
      end
    end
    p:close()
  end
  metric("meshpost_up", "gauge", nil, answered and 1 or 0)
end

return { scrape = scrape }

-- Runs one collector the way prometheus-node-exporter-lua runs its
-- collectors (openwrt/packages utils/prometheus-node-exporter-lua/files/
-- usr/bin/prometheus-node-exporter-lua: the global helpers metric(),
-- print_metric(), output(), space_split() and get_contents(), and a
-- protected call of the collector's scrape()), and prints what the
-- exporter would serve. Written from that source's behaviour for the test
-- in tests/prometheus_lua.rs; it is not the exporter.

function space_split(s)
  local t = {}
  for e in s:gmatch("%S+") do t[#t + 1] = e end
  return t
end

function get_contents(filename)
  local f = io.open(filename, "rb")
  if not f then return "" end
  local c = f:read("*a")
  f:close()
  return c
end

output = print

function print_metric(name, labels, value)
  local s = ""
  if labels then
    local parts = {}
    for k, v in pairs(labels) do parts[#parts + 1] = k .. '="' .. v .. '"' end
    s = "{" .. table.concat(parts, ",") .. "}"
  end
  output(string.format("%s%s %s", name, s, value))
end

function metric(name, mtype, labels, value)
  output("# TYPE " .. name .. " " .. mtype)
  local emit = function(l, v) print_metric(name, l, v) end
  if value then emit(labels, value) end
  return emit
end

local collector = dofile(arg[1])
local ok, err = pcall(collector.scrape)
metric("node_scrape_collector_success", "gauge", { collector = "meshpost" }, ok and 1 or 0)
if not ok then io.stderr:write(tostring(err) .. "\n") end

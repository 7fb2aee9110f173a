-- Runs a Gluon upgrade script (lib/gluon/upgrade/*) under plain Lua 5.1 for
-- tests/gluon.rs, with the two Gluon modules it uses provided here:
-- - gluon.site: the site config as Gluon's gluon-core gluon/site.lua wraps
--   it (indexing never fails, calling a node gives its value or the given
--   default, writing is an error); the site comes from a Lua file returning
--   a table, since site.json needs luci.jsonc;
-- - simple-uci: cursor() with set/section/tset/get/delete/save as Gluon's
--   simple-uci.lua defines them over libuci (booleans become '1'/'0', nil
--   or an empty list deletes, section() names or adds and then sets), over
--   an in-memory store that starts empty; save(config) writes the package
--   as UCI text to OUT_DIR/config.
-- usage: lua5.1 gluon_harness.lua SCRIPT SITE.lua OUT_DIR
local script, site_file, out = arg[1], arg[2], arg[3]

local function wrap(v)
	local t = {}
	return setmetatable(t, {
		__index = function(_, k) if v == nil or type(v) ~= 'table' then return wrap(nil) end return wrap(v[k]) end,
		__newindex = function() error('attempted to modify site config') end,
		__call = function(_, def) if v == nil then return def end return v end,
	})
end
package.preload['gluon.site'] = function() return wrap(dofile(site_file)) end

local store = {}
local function pkg(c) store[c] = store[c] or { order = {}, sections = {} } return store[c] end
local cursor = {}
cursor.__index = cursor

local function rawset_section(c, name, stype)
	local p = pkg(c)
	if not p.sections[name] then table.insert(p.order, name); p.sections[name] = { ['.type'] = stype, opts = {}, optorder = {} }
	else p.sections[name]['.type'] = stype end
	return true
end

function cursor:get(c, s, o)
	local sec = pkg(c).sections[s]
	if not sec then return nil end
	if o == nil then return sec['.type'] end
	return sec.opts[o]
end

function cursor:delete(c, s, o)
	local p = pkg(c)
	if o == nil then p.sections[s] = nil return true end
	if p.sections[s] then p.sections[s].opts[o] = nil end
	return true
end

function cursor:set(c, s, o, v)
	if v == nil and o ~= nil and type(o) ~= 'table' then return self:delete(c, s, o) end
	if v == nil then return rawset_section(c, s, o) end
	if type(v) == 'table' and #v == 0 then return self:delete(c, s, o) end
	if type(v) == 'boolean' then v = v and '1' or '0' end
	local sec = pkg(c).sections[s]
	if not sec then return false end
	if sec.opts[o] == nil then table.insert(sec.optorder, o) end
	if type(v) == 'table' then local l = {} for i, x in ipairs(v) do l[i] = tostring(x) end v = l else v = tostring(v) end
	sec.opts[o] = v
	return true
end

function cursor:tset(c, s, values)
	local ok = true
	local keys = {}
	for k in pairs(values) do table.insert(keys, k) end
	table.sort(keys)
	for _, k in ipairs(keys) do
		if k:sub(1, 1) ~= '.' then ok = ok and self:set(c, s, k, values[k]) end
	end
	return ok
end

function cursor:section(c, stype, name, values)
	if not name then
		name = string.format('cfg%06x', #pkg(c).order)
	end
	local ok = rawset_section(c, name, stype)
	if ok and values then ok = self:tset(c, name, values) end
	return ok and name
end

local function quote(v) return "'" .. v:gsub("'", "'\\''") .. "'" end

function cursor:save(c)
	local p = pkg(c)
	local f = assert(io.open(out .. '/' .. c, 'w'))
	for _, name in ipairs(p.order) do
		local sec = p.sections[name]
		if sec then
			f:write('config ', sec['.type'], ' ', quote(name), '\n')
			for _, o in ipairs(sec.optorder) do
				local v = sec.opts[o]
				if type(v) == 'table' then
					for _, x in ipairs(v) do f:write('\tlist ', o, ' ', quote(x), '\n') end
				elseif v ~= nil then
					f:write('\toption ', o, ' ', quote(v), '\n')
				end
			end
			f:write('\n')
		end
	end
	f:close()
	return true
end

package.preload['simple-uci'] = function() return { cursor = function() return setmetatable({}, cursor) end } end

dofile(script)

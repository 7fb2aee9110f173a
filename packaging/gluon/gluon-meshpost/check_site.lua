-- site.conf / domains/*.conf, all optional:
-- meshpost = {
--   enabled = true,            -- run the daemon (default true)
--   domain = 'ffhh',           -- meshpost's domain (default: the site code)
--   port = 4849,               -- UDP port of links (default 4849)
-- },
need_boolean(in_domain({'meshpost', 'enabled'}), false)
need_string_match(in_domain({'meshpost', 'domain'}), '^[a-z0-9.-]+$', false)
need_number(in_domain({'meshpost', 'port'}), false)

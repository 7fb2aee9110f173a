//! gluon-meshpost's upgrade script (packaging/gluon/gluon-meshpost), run by
//! the real Lua 5.1 with Gluon's gluon.site and simple-uci provided as
//! Gluon defines them (tests/tools/gluon_harness.lua): the meshpost config
//! it writes is read the same by the real libuci and by meshpost, and the
//! daemon's loader takes it with the site's domain, port and the client
//! bridge for discovery; the firewall opens exactly that port and mDNS on
//! the local client zone.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use meshpost::config::{Overrides, Settings};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Runs the upgrade script with `site` (a Lua table); None without Lua
/// outside CI.
fn upgrade(site: &str) -> Option<TempDir> {
    let Some(lua) = ["lua5.1", "lua"].into_iter().find(|l| Command::new(l).arg("-v").output().is_ok()) else {
        assert!(!in_ci(), "lua5.1 is missing and CI is set: `make test` installs it");
        eprintln!("SKIP: no lua5.1 (make test installs it)");
        return None;
    };
    let t = TempDir::new("gluon");
    let site_file = t.0.join("site.lua");
    std::fs::write(&site_file, format!("return {site}\n")).unwrap();
    let out = Command::new(lua)
        .arg(format!("{ROOT}/tests/tools/gluon_harness.lua"))
        .arg(format!("{ROOT}/packaging/gluon/gluon-meshpost/luasrc/lib/gluon/upgrade/820-meshpost"))
        .arg(&site_file)
        .arg(&t.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(t)
}

/// The file's sections as meshpost reads them, after checking that the real
/// libuci reads it the same way.
fn sections(path: &Path) -> Vec<meshpost::uci::Section> {
    let text = std::fs::read(path).unwrap();
    let real = libuci_ref::parse(&text).unwrap_or_else(|e| panic!("libuci refuses {}: {e:?}", path.display()));
    assert_eq!(real, meshpost::uci::dump(&meshpost::uci::parse_raw(&text).unwrap()));
    meshpost::uci::parse(&text).unwrap()
}

fn rule<'a>(fw: &'a [meshpost::uci::Section], name: &str) -> &'a meshpost::uci::Section {
    fw.iter().find(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no firewall rule {name}"))
}

#[test]
fn a_site_without_meshpost_settings_gets_its_site_code_as_domain_and_discovery_on_br_client() {
    let Some(t) = upgrade("{ site_code = 'FFHH_sued', meshpost = nil }") else { return };
    let secs = sections(&t.0.join("meshpost"));
    assert_eq!(secs.len(), 1);
    let s = Settings::load(Some(&t.0.join("meshpost")), &Overrides::default()).unwrap();
    assert_eq!(s.node.domain, "ffhh-sued", "site code made a valid meshpost domain");
    assert_eq!(s.interfaces, ["br-client"]);
    assert_eq!(s.port, 4849);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(secs[0].get("enabled").unwrap().value, "1");

    let fw = sections(&t.0.join("firewall"));
    let r = rule(&fw, "loc_client_meshpost");
    for (o, v) in [("src", "loc_client"), ("proto", "udp"), ("dest_port", "4849"), ("target", "ACCEPT")] {
        assert_eq!(r.get(o).map(|x| x.value.as_str()), Some(v), "{o}");
    }
    assert_eq!(rule(&fw, "loc_client_meshpost_mdns").get("dest_port").unwrap().value, "5353");
    assert_eq!(fw.len(), 2, "no other firewall changes");
}

#[test]
fn site_settings_choose_domain_port_and_whether_it_runs() {
    let Some(t) = upgrade("{ site_code = 'ffhh', meshpost = { enabled = false, domain = 'hamburg', port = 4900 } }")
    else {
        return;
    };
    let s = Settings::load(Some(&t.0.join("meshpost")), &Overrides::default()).unwrap();
    assert_eq!((s.node.domain.as_str(), s.port), ("hamburg", 4900));
    assert_eq!(sections(&t.0.join("meshpost"))[0].get("enabled").unwrap().value, "0");
    let fw = sections(&t.0.join("firewall"));
    assert_eq!(rule(&fw, "loc_client_meshpost").get("dest_port").unwrap().value, "4900");
}

//! The real libuci reading UCI text, for tests only.
//!
//! `libuci-sys` builds OpenWrt's libuci and libubox from its vendored
//! sources (cmake) and links them as shared libraries. This crate imports
//! bytes the way `uci_load` does (`uci_import` into one named package,
//! strict mode, as `uci`, rpcd and LuCI use it) and writes the result in
//! the canonical form of meshpost's `uci::dump`, so the two readers can be
//! compared byte for byte. It is never linked into the daemon (size and a
//! C dependency on the routers; docs/size.md), and does nothing else.

use std::ffi::{CStr, c_char};
use std::ptr;

use libuci_sys::{
    uci_alloc_context, uci_element, uci_free_context, uci_get_errorstr, uci_import, uci_list, uci_option, uci_package,
    uci_section,
};

/// libuci's parse error: its reason text and line counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibuciError {
    pub reason: String,
    pub line: usize,
    /// The whole message, as `uci` prints it.
    pub message: String,
}

fn bytes(p: *const c_char) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: libuci's strings are NUL-terminated and live as long as the
    // context, which outlives this call.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

/// The elements of an intrusive libuci list, in order. Every libuci
/// element starts with its `uci_element`, whose first field is the list
/// node, so a node pointer is the element pointer.
unsafe fn elements(head: *const uci_list) -> Vec<*mut uci_element> {
    let mut out = Vec::new();
    // SAFETY: the caller passes a list head of a live package.
    let mut node = unsafe { (*head).next };
    while !node.is_null() && !std::ptr::eq(node, head) {
        out.push(node as *mut uci_element);
        node = unsafe { (*node).next };
    }
    out
}

fn push_value(out: &mut Vec<u8>, kind: &[u8], name: &[u8], v: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(name);
    out.extend_from_slice(format!(" {}:", v.len()).as_bytes());
    out.extend_from_slice(v);
    out.push(b'\n');
}

unsafe fn dump_package(p: *mut uci_package) -> Vec<u8> {
    let mut out = Vec::new();
    // SAFETY (whole function): `p` is a package libuci just built; its
    // sections and options are the types their `type_` fields say.
    unsafe {
        for se in elements(&(*p).sections) {
            let s = se as *mut uci_section;
            out.extend_from_slice(b"config ");
            out.extend_from_slice(&bytes((*s).type_));
            out.extend_from_slice(if (*s).anonymous { b" anonymous " } else { b" named " });
            out.extend_from_slice(&bytes((*se).name));
            out.push(b'\n');
            for oe in elements(&(*s).options) {
                let o = oe as *mut uci_option;
                let name = bytes((*oe).name);
                if (*o).type_ == libuci_sys::uci_option_type_UCI_TYPE_STRING {
                    push_value(&mut out, b"\toption ", &name, &bytes((*o).v.string));
                } else {
                    for item in elements(&(*o).v.list) {
                        push_value(&mut out, b"\tlist ", &name, &bytes((*item).name));
                    }
                }
            }
        }
    }
    out
}

fn parse_error(message: &str) -> LibuciError {
    // "Parse error (REASON) at line N, byte M"
    let reason = message
        .find('(')
        .zip(message.rfind(") at line "))
        .map(|(a, b)| message[a + 1..b].to_string())
        .unwrap_or_default();
    let line = message
        .rfind("at line ")
        .and_then(|i| message[i + 8..].split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    LibuciError { reason, line, message: message.to_string() }
}

/// Held around every call into libuci: its `uci_get_errorstr` formats
/// into a `static char error_info[128]` (openwrt/uci `libuci.c`), so two
/// threads reporting errors at once garbled each other's messages (a test
/// binary runs its tests on several threads; CI saw "(too many
/// arguments) at line erwrites prior section..." on 2026-12-07).
static LIBUCI: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Imports `input` as package `meshpost` with the real libuci.
pub fn parse(input: &[u8]) -> Result<Vec<u8>, LibuciError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    // A test that panicked holding it left libuci as it was: go on.
    let _one_at_a_time = LIBUCI.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: fmemopen reads `input`, which outlives the stream; the
    // context and stream are freed on every path below.
    unsafe {
        let f = libc::fmemopen(input.as_ptr() as *mut _, input.len(), c"r".as_ptr());
        if f.is_null() {
            return Err(LibuciError { reason: "fmemopen failed".into(), line: 0, message: String::new() });
        }
        let ctx = uci_alloc_context();
        let mut pkg: *mut uci_package = ptr::null_mut();
        let rc = uci_import(ctx, f as *mut _, c"meshpost".as_ptr(), &mut pkg, true);
        let result = if rc == 0 && !pkg.is_null() {
            Ok(dump_package(pkg))
        } else if rc == 0 {
            Ok(Vec::new())
        } else {
            let mut msg: *mut c_char = ptr::null_mut();
            uci_get_errorstr(ctx, &mut msg, ptr::null());
            let text = String::from_utf8_lossy(&bytes(msg)).into_owned();
            libc::free(msg as *mut _);
            Err(parse_error(&text))
        };
        libc::fclose(f);
        uci_free_context(ctx);
        result
    }
}

//! The contact card as a QR code on a terminal (`meshpost identity --card`).
//!
//! The code holds the card's own text in capitals (`MPCARD1:` and upper-case
//! hex), which QR's alphanumeric mode stores in 5.5 bits a character, so a
//! phone that scans it gets exactly what `meshpost contact add` takes. It is
//! drawn with half blocks, two module rows per line, light modules as ink
//! (for the usual light-on-dark terminal, as `qrencode -t UTF8` does), with
//! the four-module quiet zone the standard asks for.
//!
//! It does not pick a smaller error correction than L or split the card
//! over several codes: a card is about 1.4 KB, so the code is large
//! (version 30 or so, 137 modules and a quiet zone: 145 columns).

use qrcodegen::{QrCode, QrCodeEcc};

const QUIET: i32 = 4;

/// The QR code of `card`, drawn for a terminal; `None` if it does not fit
/// any QR version.
pub fn render(card: &str) -> Option<String> {
    let code = QrCode::encode_text(&card.to_ascii_uppercase(), QrCodeEcc::Low).ok()?;
    let n = code.size();
    // Light is ink: a module outside the code (quiet zone) is light.
    let light = |x: i32, y: i32| !(0..n).contains(&x) || !(0..n).contains(&y) || !code.get_module(x, y);
    let mut out = String::new();
    let mut y = -QUIET;
    while y < n + QUIET {
        for x in -QUIET..n + QUIET {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_sized_text_fits_and_is_square_with_its_quiet_zone() {
        let card = format!("mpcard1:{}", "ab".repeat(1500));
        let qr = render(&card).unwrap();
        let lines: Vec<&str> = qr.lines().collect();
        let width = lines[0].chars().count();
        assert_eq!(lines.len(), width.div_ceil(2), "two module rows a line");
        assert!(lines[0].chars().all(|c| c == '█'), "quiet zone on top");
        assert!(render(&"x".repeat(8000)).is_none(), "too long for any version");
    }
}

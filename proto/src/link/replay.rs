//! Sliding replay window for transport counters (RFC 6479 style bitmap).
//!
//! [`ReplayWindow::check`] runs before decryption and does not change state;
//! [`ReplayWindow::update`] runs only after the AEAD tag verified, so forged
//! packets can never move the window.

const WORDS: usize = 32;
/// How many counters behind the highest one are still accepted.
pub const WINDOW: u64 = (WORDS * 64) as u64;
/// The first counter no session may use (the send limit of `session`).
pub const MAX_COUNTER: u64 = 1 << 60;

/// Remembers which recent counters have been seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// One more than the highest counter accepted so far.
    top: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { top: 0, bits: [0; WORDS] }
    }
}

impl ReplayWindow {
    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// True if `counter` is new and inside the window. Counters at or above
    /// [`MAX_COUNTER`] are never valid (senders stop before it), which also
    /// keeps every sum below from overflowing.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= MAX_COUNTER {
            return false;
        }
        if counter >= self.top {
            return true;
        }
        if counter + WINDOW < self.top {
            return false;
        }
        let (w, m) = Self::slot(counter);
        self.bits[w] & m == 0
    }

    /// Records `counter` as seen; call only after [`check`](Self::check) and
    /// a successful decryption.
    pub fn update(&mut self, counter: u64) {
        if counter >= MAX_COUNTER {
            return;
        }
        if counter >= self.top {
            let advance = counter - self.top + 1;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for c in self.top..=counter {
                    let (w, m) = Self::slot(c);
                    self.bits[w] &= !m;
                }
            }
            self.top = counter + 1;
        }
        let (w, m) = Self::slot(counter);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, c: u64) -> bool {
        if w.check(c) {
            w.update(c);
            true
        } else {
            false
        }
    }

    #[test]
    fn accepts_each_counter_once() {
        let mut w = ReplayWindow::default();
        assert!(accept(&mut w, 0));
        assert!(!accept(&mut w, 0));
        assert!(accept(&mut w, 1));
        assert!(!accept(&mut w, 1));
    }

    #[test]
    fn accepts_reordering_inside_the_window() {
        let mut w = ReplayWindow::default();
        assert!(accept(&mut w, 100));
        assert!(accept(&mut w, 50));
        assert!(accept(&mut w, 99));
        assert!(!accept(&mut w, 50));
        assert!(accept(&mut w, 101));
    }

    #[test]
    fn rejects_counters_older_than_the_window() {
        let mut w = ReplayWindow::default();
        assert!(accept(&mut w, WINDOW + 10));
        assert!(!accept(&mut w, 9));
        assert!(accept(&mut w, 11));
    }

    #[test]
    fn large_jumps_clear_old_bits() {
        let mut w = ReplayWindow::default();
        for c in 0..10 {
            assert!(accept(&mut w, c));
        }
        assert!(accept(&mut w, 10 * WINDOW));
        // The slot that counter 5 used is reused by 10*WINDOW+5: it must be free.
        assert!(accept(&mut w, 10 * WINDOW - 3));
        assert!(!accept(&mut w, 5));
    }

    #[test]
    fn extreme_counters_do_not_overflow() {
        let mut w = ReplayWindow::default();
        assert!(!w.check(u64::MAX));
        assert!(!w.check(MAX_COUNTER));
        w.update(u64::MAX);
        assert!(w.check(0), "refused counters do not move the window");
        assert!(w.check(MAX_COUNTER - 1));
        w.update(MAX_COUNTER - 1);
        assert!(!w.check(MAX_COUNTER - 1));
        assert!(!w.check(0));
    }

    #[test]
    fn check_does_not_mutate() {
        let mut w = ReplayWindow::default();
        assert!(w.check(7));
        assert!(w.check(7));
        w.update(7);
        assert!(!w.check(7));
    }
}

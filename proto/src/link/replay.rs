//! Sliding replay window for transport counters (RFC 6479 style bitmap).
//!
//! [`ReplayWindow::check`] runs before decryption and does not change state;
//! [`ReplayWindow::update`] runs only after the AEAD tag verified, so forged
//! packets can never move the window.

const WORDS: usize = 32;
/// How many counters behind the highest one are still accepted.
pub const WINDOW: u64 = (WORDS * 64) as u64;
/// The window sessions use (2048 counters).
pub type ReplayWindow = Window<WORDS>;
/// The first counter no session may use (the send limit of `session`).
pub const MAX_COUNTER: u64 = 1 << 60;

/// Remembers which recent counters have been seen, in a window of
/// `N * 64` counters (generic so that small windows can be checked
/// exhaustively; sessions use [`ReplayWindow`]).
#[derive(Debug, Clone)]
pub struct Window<const N: usize> {
    /// One more than the highest counter accepted so far.
    top: u64,
    bits: [u64; N],
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Window { top: 0, bits: [0; N] }
    }
}

impl<const N: usize> Window<N> {
    const WINDOW: u64 = (N * 64) as u64;

    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % Self::WINDOW;
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
        if counter + Self::WINDOW < self.top {
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
            if advance >= Self::WINDOW {
                self.bits = [0; N];
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

    /// The specification: a counter is accepted iff it is below
    /// MAX_COUNTER, was never accepted, and is not more than `w` behind
    /// the highest accepted counter.
    #[derive(Default)]
    struct Model {
        seen: std::collections::BTreeSet<u64>,
        top: u64,
    }

    impl Model {
        fn accept(&mut self, c: u64, w: u64) -> bool {
            let ok = c < MAX_COUNTER && !self.seen.contains(&c) && c + w >= self.top;
            if ok {
                self.seen.insert(c);
                self.top = self.top.max(c + 1);
            }
            ok
        }
    }

    #[test]
    fn every_sequence_of_three_on_a_64_counter_window_matches_the_specification() {
        // Exhaustive over a small window: every ordered triple of counters
        // around, across and far beyond the window's edges, including the
        // reuse of each bit slot. 2.9 million sequences.
        let mut alphabet: Vec<u64> = (0..130).collect();
        alphabet.extend([191, 192, 193, 1_000, MAX_COUNTER - 1, MAX_COUNTER, u64::MAX]);
        for &a in &alphabet {
            for &b in &alphabet {
                for &c in &alphabet {
                    let (mut w, mut m) = (Window::<1>::default(), Model::default());
                    for x in [a, b, c] {
                        let got = w.check(x);
                        if got {
                            w.update(x);
                        }
                        assert_eq!(got, m.accept(x, 64), "sequence {a} {b} {c} at {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_million_random_counters_on_the_real_window_match_the_specification() {
        // Counters near a moving front, with reordering, replays and jumps.
        let (mut w, mut m) = (ReplayWindow::default(), Model::default());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut front: u64 = 0;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = match x % 100 {
                0 => front + WINDOW + (x >> 40) % 10,
                1..=9 => front.saturating_sub(WINDOW + 5) + (x >> 32) % 20,
                _ => (front + (x >> 32) % 64).saturating_sub(40),
            };
            front = front.max(c);
            let got = w.check(c);
            if got {
                w.update(c);
            }
            assert_eq!(got, m.accept(c, WINDOW), "counter {c}");
        }
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

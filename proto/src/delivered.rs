//! Ids of envelopes delivered to this node, remembered until they expire.
//!
//! This is the dedup record that makes delivery exactly-once. It is kept
//! apart from the relay [`SeenSet`](crate::store::SeenSet), which a busy or
//! hostile neighbour can churn: nothing here is ever evicted before its
//! envelope expires. When the set is full, a new delivery is refused instead
//! (the sender keeps its copy and offers it again later), so a flood can
//! delay deliveries but never cause a second one. The protocol's
//! [`MAX_TTL`](crate::envelope::MAX_TTL) bounds how long any entry lives.
//!
//! An entry starts *pending* while the caller writes the message to its
//! inbox, and becomes *durable* when the caller confirms the write; a failed
//! write removes it. It does not persist anything itself: the caller
//! restores durable ids at start-up with [`Delivered::restore`].

use crate::envelope::EnvelopeId;
use crate::expiring::ExpiringMap;
use crate::identity::NodeId;

/// One delivered id: when it may be forgotten and who sent it (so a late
/// copy can still be acknowledged to its origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub expires: u64,
    pub origin: NodeId,
    pub durable: bool,
}

/// Why a delivery could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveredError {
    /// Every slot holds an unexpired delivery.
    Full { capacity: usize },
}

impl core::fmt::Display for DeliveredError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeliveredError::Full { capacity } => {
                write!(f, "{capacity} delivered ids are remembered and none has expired yet")
            }
        }
    }
}

/// The bounded, never-evicting set of delivered ids.
#[derive(Debug)]
pub struct Delivered {
    cap: usize,
    ids: ExpiringMap<Entry>,
}

impl Delivered {
    pub fn new(cap: usize) -> Delivered {
        Delivered { cap: cap.max(1), ids: ExpiringMap::default() }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Changes the capacity; entries above a lowered capacity are kept
    /// (never evicted) and only new deliveries wait until some expire.
    pub fn set_capacity(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: &EnvelopeId) -> bool {
        self.ids.contains(id)
    }

    pub fn get(&self, id: &EnvelopeId) -> Option<&Entry> {
        self.ids.get(id)
    }

    /// Records a delivery that is being written (pending).
    pub fn begin(&mut self, id: EnvelopeId, origin: NodeId, expires: u64) -> Result<(), DeliveredError> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        if self.ids.len() >= self.cap {
            return Err(DeliveredError::Full { capacity: self.cap });
        }
        self.ids.insert(id, expires, Entry { expires, origin, durable: false });
        Ok(())
    }

    /// The caller wrote the delivery durably.
    pub fn confirm(&mut self, id: &EnvelopeId) {
        if let Some(e) = self.ids.get_mut(id) {
            e.durable = true;
        }
    }

    /// The write failed: forget the delivery so a later copy is taken.
    pub fn abort(&mut self, id: &EnvelopeId) {
        if self.ids.get(id).is_some_and(|e| !e.durable) {
            self.ids.remove(id);
        }
    }

    /// Restores a durable delivery at start-up. Restoring ignores the
    /// capacity: what was delivered before must stay remembered.
    pub fn restore(&mut self, id: EnvelopeId, origin: NodeId, expires: u64) {
        self.ids.insert(id, expires, Entry { expires, origin, durable: true });
    }

    /// Forgets every id whose envelope expired at or before `now` (unix s).
    pub fn expire(&mut self, now: u64) {
        self.ids.expire(now);
    }

    /// The soonest expiry, for timers.
    pub fn next_expiry(&self) -> Option<u64> {
        self.ids.next_expiry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> EnvelopeId {
        EnvelopeId([i; 16])
    }

    #[test]
    fn full_refuses_instead_of_evicting() {
        let mut d = Delivered::new(2);
        let o = NodeId([9; 16]);
        d.begin(id(1), o, 100).unwrap();
        d.confirm(&id(1));
        d.begin(id(2), o, 50).unwrap();
        assert_eq!(d.begin(id(3), o, 200), Err(DeliveredError::Full { capacity: 2 }));
        assert!(d.contains(&id(1)) && d.contains(&id(2)), "nothing was evicted");
        d.expire(50);
        assert!(!d.contains(&id(2)), "expired ids go");
        d.begin(id(3), o, 200).unwrap();
        assert!(d.contains(&id(3)));
    }

    #[test]
    fn a_failed_write_forgets_only_pending_entries() {
        let mut d = Delivered::new(4);
        let o = NodeId([9; 16]);
        d.begin(id(1), o, 100).unwrap();
        d.abort(&id(1));
        assert!(!d.contains(&id(1)));
        d.begin(id(2), o, 100).unwrap();
        d.confirm(&id(2));
        d.abort(&id(2));
        assert!(d.contains(&id(2)), "a durable delivery is never taken back");
        d.restore(id(3), o, 10);
        assert!(d.get(&id(3)).is_some_and(|e| e.durable));
        assert_eq!(d.next_expiry(), Some(10));
    }
}

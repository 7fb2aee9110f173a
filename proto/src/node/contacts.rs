//! Contacts: cards a person handed over out of band (a signed announce,
//! as `meshpost identity --card` prints it), so a node that has never been
//! heard can be messaged, and a contact's keys cannot change silently.
//!
//! A contact's card is verified like any announce (origin signature; its
//! lifetime is not checked: a card handed over last month is still that
//! person's card), kept in the card book without ever being evicted, and a
//! later announce that changes its encryption keys is refused and reported
//! instead of replacing them. Blocked nodes' messages to us are dropped.
//! It does not store anything (the caller keeps the lists and the card
//! files) and knows no names given locally.

use std::collections::BTreeSet;

use super::*;

/// Most contacts a node keeps.
pub const MAX_CONTACTS: usize = 1024;

/// Why a contact card was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactError {
    /// Not a signed announce, or its card does not decode.
    NotACard(String),
    /// That is this node's own card.
    Myself,
    /// A contact with this node id is known with other encryption keys.
    KeyChanged(NodeId),
    Full,
}

impl fmt::Display for ContactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactError::NotACard(why) => write!(f, "not a meshpost contact card: {why}"),
            ContactError::Myself => f.write_str("that is this node's own card"),
            ContactError::KeyChanged(n) => write!(
                f,
                "contact {n} is known with other keys; a card with new keys is refused (remove the contact first if the change is real)"
            ),
            ContactError::Full => write!(f, "at most {MAX_CONTACTS} contacts"),
        }
    }
}

/// Whether two cards of one node carry the same encryption keys.
fn same_keys(a: &Card, b: &Card) -> bool {
    a.x25519 == b.x25519 && a.kem_ek == b.kem_ek
}

impl Node {
    /// This node's signed full card: what others add as a contact.
    pub fn own_card(&self) -> Option<&[u8]> {
        self.full_card.as_ref().map(|(e, _)| e.bytes())
    }

    /// Adds (or re-adds) a contact from its signed announce bytes.
    pub fn add_contact(&mut self, envelope: &[u8]) -> Result<NodeId, ContactError> {
        let env = Envelope::decode_ignoring_time(envelope).map_err(|e| ContactError::NotACard(e.to_string()))?;
        if env.kind() != Kind::Announce {
            return Err(ContactError::NotACard("not an announce".into()));
        }
        let card = Card::decode(*env.origin(), env.payload()).map_err(|e| ContactError::NotACard(e.to_string()))?;
        let node = card.node_id();
        if node == self.me {
            return Err(ContactError::Myself);
        }
        if self.contacts.contains(&node)
            && let Some(known) = self.cards.get(&node)
            && !same_keys(known, &card)
        {
            return Err(ContactError::KeyChanged(node));
        }
        if !self.contacts.contains(&node) && self.contacts.len() >= MAX_CONTACTS {
            return Err(ContactError::Full);
        }
        self.contacts.insert(node);
        // Kept like a linked neighbour's card: never evicted.
        let contacts = &self.contacts;
        let links = &self.links;
        let keep = |k: &NodeId| links.contains_key(k) || contacts.contains(k);
        let (learned, evicted) = self.cards.learn(card, (env.id(), env.bytes()), self.clock, keep);
        if let Some(gone) = evicted {
            self.cards_out.remove(&gone);
            self.actions.push_back(Action::ForgetCard { node: gone });
        }
        if !matches!(learned, Learned::Refused) {
            self.actions.push_back(Action::SaveCard { node, envelope: envelope.to_vec() });
        }
        Ok(node)
    }

    /// Marks a node whose card is already known (restored) as a contact.
    pub fn mark_contact(&mut self, node: NodeId) -> bool {
        if self.cards.get(&node).is_none() || self.contacts.len() >= MAX_CONTACTS {
            return false;
        }
        self.contacts.insert(node)
    }

    pub fn remove_contact(&mut self, node: &NodeId) -> bool {
        self.contacts.remove(node)
    }

    pub fn contacts(&self) -> &BTreeSet<NodeId> {
        &self.contacts
    }

    /// Blocks (or unblocks) `node`: its messages addressed to us are
    /// dropped unread and unacknowledged; relaying for others is unchanged.
    /// False if the block list is full.
    pub fn set_blocked(&mut self, node: NodeId, blocked: bool) -> bool {
        if !blocked {
            self.blocked.remove(&node);
            return true;
        }
        if self.blocked.len() >= MAX_CONTACTS && !self.blocked.contains(&node) {
            return false;
        }
        self.blocked.insert(node);
        true
    }

    pub fn blocked(&self) -> &BTreeSet<NodeId> {
        &self.blocked
    }

    /// An announce for a contact that changes its keys: refused (true).
    pub(super) fn contact_key_change(&mut self, card: &Card, from: NodeId) -> bool {
        let node = card.node_id();
        let changed = self.contacts.contains(&node) && self.cards.get(&node).is_some_and(|k| !same_keys(k, card));
        if changed {
            self.emit(Event::EnvelopeDropped {
                from,
                reason: format!("contact {node} announced other keys: refused, the contact keeps its known keys"),
            });
        }
        changed
    }
}

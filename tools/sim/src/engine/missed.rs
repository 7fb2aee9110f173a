//! With `SIM_DEBUG_MISSED` set, a run ends by describing each direct
//! message it counts as missed: when it was sent, whether the graph of
//! nodes up joins its ends now, and every node that still stores it, with
//! that copy's hops left and the node's route to the destination. (That is
//! how the copies stranded without hops near their destination were
//! found.) It changes no figure of the report.

use meshpost_proto::identity::NodeId;

use super::Sim;

impl Sim {
    pub(super) fn explain_missed(&self, settled: impl Fn(u64) -> bool) {
        let index = |n: &NodeId| self.ids.iter().position(|x| x == n);
        for (id, (t, src, dst)) in &self.sent {
            let ends_up = [src, dst].iter().all(|&&k| self.up[k as usize] && settled(self.up_since[k as usize]))
                && self.joined_late(*src, *dst);
            if !(settled(*t) && settled(self.healed_at) && ends_up) {
                continue;
            }
            eprintln!(
                "missed {id:?}: sent at {t} ms by {src} to {dst}; joined by nodes up now: {}",
                self.joined(*src, *dst)
            );
            for (k, node) in self.nodes.iter().enumerate() {
                let Some(e) = node.store().get(id) else { continue };
                let route = node.routes().into_iter().find(|r| r.dest == self.ids[*dst as usize]);
                eprintln!(
                    "  stored at {k} (up {}): {} hops left; route {:?}; links {:?}",
                    self.up[k],
                    e.head.hops_left(),
                    route.map(|r| (index(&r.via), r.hops)),
                    node.links().iter().filter_map(|l| index(&l.node)).collect::<Vec<_>>()
                );
            }
        }
    }

    /// With `SIM_DEBUG_MISSED`: each channel message a node missed, when it
    /// was posted and by whom, since when the node is up, whether it is
    /// joined to the origin now, whether it stores the message, and which
    /// of its radio neighbours that are up store it (hops left) or are
    /// linked to it.
    pub(super) fn explain_channel_missed(&self, settled: impl Fn(u64) -> bool) {
        for (id, (t, src, got)) in &self.posted {
            let origin_up = self.up[*src as usize] && settled(self.up_since[*src as usize]);
            if !(settled(*t) && settled(self.healed_at) && origin_up) {
                continue;
            }
            for (k, g) in got.iter().enumerate() {
                let reachable = self.up[k] && settled(self.up_since[k]) && self.joined_late(*src, k as u32);
                if k == *src as usize || *g || !reachable {
                    continue;
                }
                let linked: Vec<usize> =
                    self.nodes[k].links().iter().filter_map(|l| self.ids.iter().position(|x| *x == l.node)).collect();
                let holders: Vec<(u32, u8, bool)> = self.adj[k]
                    .iter()
                    .filter(|&&j| self.up[j as usize])
                    .filter_map(|&j| {
                        let e = self.nodes[j as usize].store().get(id)?;
                        Some((j, e.head.hops_left(), linked.contains(&(j as usize))))
                    })
                    .collect();
                // Neighbours that had it but keep no copy (came without
                // hops, or the store let it go).
                let had: Vec<u32> = self.adj[k]
                    .iter()
                    .filter(|&&j| {
                        self.up[j as usize] && got[j as usize] && self.nodes[j as usize].store().get(id).is_none()
                    })
                    .copied()
                    .collect();
                eprintln!(
                    "channel missed {id:?}: posted at {t} ms by {src}; node {k} up since {} ms, joined {}, stores it {}; {} of {} radio neighbours up and linked; holders (node, hops left, linked): {holders:?}; had it, no copy: {had:?}",
                    self.up_since[k],
                    self.joined(*src, k as u32),
                    self.nodes[k].store().get(id).is_some(),
                    linked.len(),
                    self.adj[k].iter().filter(|&&j| self.up[j as usize]).count(),
                );
            }
        }
    }
}

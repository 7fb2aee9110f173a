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
            let ends_up = [src, dst].iter().all(|&&k| self.up[k as usize] && settled(self.up_since[k as usize]));
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
                    e.env.hops_left(),
                    route.map(|r| (index(&r.via), r.hops)),
                    node.links().iter().filter_map(|l| index(&l.node)).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Whether radio links between nodes that are up join `a` and `b`.
    fn joined(&self, a: u32, b: u32) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = std::collections::VecDeque::from([a]);
        seen[a as usize] = true;
        while let Some(u) = queue.pop_front() {
            for v in &self.adj[u as usize] {
                if self.up[*v as usize] && !seen[*v as usize] {
                    seen[*v as usize] = true;
                    queue.push_back(*v);
                }
            }
        }
        seen[b as usize]
    }
}

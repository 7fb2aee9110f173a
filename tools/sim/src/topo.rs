//! Who can hear whom: the topologies the simulator runs on.
//!
//! - `segment`: one layer-2 domain as batman-adv makes it (`bat0`); mDNS and
//!   every datagram reach every node.
//! - `mesh`: a layer-3 mesh (Babel, OLSR): nodes at random points in a unit
//!   square, and a link between two nodes closer than a radius chosen for
//!   the wanted average degree; a component left apart is joined to its
//!   nearest node, so the graph is connected.
//!
//! - `federated`: ten communities, each a `mesh` of a tenth of the nodes
//!   with its own domain; the first node of each is its gateway, and the
//!   gateways reach each other over the internet (no mDNS between them:
//!   they are configured federation peers, engine.rs).
//!
//! Deliberately not here: link quality and timing (engine.rs).

use meshpost_proto::rng::NodeRng;
use rand_core::RngCore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment,
    Mesh,
    Federated,
}

/// Communities of a `federated` topology.
pub const COMMUNITIES: usize = 10;

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "segment" => Some(Kind::Segment),
            "mesh" => Some(Kind::Mesh),
            "federated" => Some(Kind::Federated),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Mesh => "mesh",
            Kind::Federated => "federated",
        }
    }

    /// The community of each of `n` nodes (all 0 but for `federated`:
    /// ten blocks of consecutive nodes).
    pub fn communities(self, n: usize) -> Vec<usize> {
        match self {
            Kind::Federated => (0..n).map(|i| i * COMMUNITIES / n).collect(),
            _ => vec![0; n],
        }
    }
}

/// A uniform number in [0, 1).
pub fn unit(rng: &mut NodeRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Neighbour lists, sorted (for binary search), symmetric.
pub fn build(kind: Kind, n: usize, degree: f64, rng: &mut NodeRng) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); n];
    match kind {
        Kind::Segment => {
            for (i, a) in adj.iter_mut().enumerate() {
                *a = (0..n as u32).filter(|j| *j as usize != i).collect();
            }
        }
        Kind::Mesh => adj = mesh(n, degree, rng),
        Kind::Federated => {
            let comm = kind.communities(n);
            for c in 0..COMMUNITIES {
                let members: Vec<usize> = (0..n).filter(|i| comm[*i] == c).collect();
                for (a, list) in mesh(members.len(), degree, rng).into_iter().enumerate() {
                    adj[members[a]] = list.into_iter().map(|b| members[b as usize] as u32).collect();
                }
            }
        }
    }
    for a in &mut adj {
        a.sort_unstable();
        a.dedup();
    }
    adj
}

/// A random geometric graph of `n` nodes with about `degree` neighbours
/// each, made connected.
fn mesh(n: usize, degree: f64, rng: &mut NodeRng) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); n];
    let pts: Vec<(f64, f64)> = (0..n).map(|_| (unit(rng), unit(rng))).collect();
    // Expected degree of a random geometric graph: n * pi * r^2.
    let r2 = degree / (n as f64 * core::f64::consts::PI);
    let d2 = |a: usize, b: usize| (pts[a].0 - pts[b].0).powi(2) + (pts[a].1 - pts[b].1).powi(2);
    for i in 0..n {
        for j in i + 1..n {
            if d2(i, j) <= r2 {
                adj[i].push(j as u32);
                adj[j].push(i as u32);
            }
        }
    }
    // Join components: each one apart from node 0's gets an edge from
    // its node nearest to the connected part.
    let mut comp = components(&adj);
    while let Some(other) = (0..n).find(|i| comp[*i] != comp[0]) {
        let c = comp[other];
        let (mut best, mut bd) = ((0, 0), f64::MAX);
        for a in (0..n).filter(|a| comp[*a] == c) {
            for b in (0..n).filter(|b| comp[*b] == comp[0]) {
                if d2(a, b) < bd {
                    (best, bd) = ((a, b), d2(a, b));
                }
            }
        }
        adj[best.0].push(best.1 as u32);
        adj[best.1].push(best.0 as u32);
        comp = components(&adj);
    }
    for a in &mut adj {
        a.sort_unstable();
        a.dedup();
    }
    adj
}

fn components(adj: &[Vec<u32>]) -> Vec<usize> {
    let mut comp = vec![usize::MAX; adj.len()];
    for start in 0..adj.len() {
        if comp[start] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        comp[start] = start;
        while let Some(x) = stack.pop() {
            for &y in &adj[x] {
                if comp[y as usize] == usize::MAX {
                    comp[y as usize] = start;
                    stack.push(y as usize);
                }
            }
        }
    }
    comp
}

/// The most hops between two nodes of `adj` (one breadth-first search
/// from every node; pairs in different components do not count).
pub fn diameter(adj: &[Vec<u32>]) -> usize {
    let mut most = 0;
    let mut dist = vec![usize::MAX; adj.len()];
    let mut queue = std::collections::VecDeque::new();
    for src in 0..adj.len() {
        dist.iter_mut().for_each(|d| *d = usize::MAX);
        dist[src] = 0;
        queue.push_back(src);
        while let Some(u) = queue.pop_front() {
            most = most.max(dist[u]);
            for &v in &adj[u] {
                if dist[v as usize] == usize::MAX {
                    dist[v as usize] = dist[u] + 1;
                    queue.push_back(v as usize);
                }
            }
        }
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mesh_of_a_thousand_is_within_the_largest_hop_limit_an_origin_may_sign() {
        // Random geometric graphs of average degree 8: about 25 hops across
        // at 300 nodes, 40 to 45 at 1000, more than the 32 once allowed.
        for seed in 1..=3 {
            let mut rng = NodeRng::from_seed([seed; 32]);
            let d = diameter(&build(Kind::Mesh, 1000, 8.0, &mut rng));
            assert!(d > 32 && d + 2 <= meshpost_proto::envelope::MAX_HOPS as usize, "diameter {d}");
        }
    }

    #[test]
    fn a_mesh_is_connected_with_about_the_wanted_degree() {
        let mut rng = NodeRng::from_seed([1; 32]);
        let adj = build(Kind::Mesh, 300, 8.0, &mut rng);
        let c = components(&adj);
        assert!(c.iter().all(|x| *x == c[0]), "connected");
        let avg = adj.iter().map(Vec::len).sum::<usize>() as f64 / 300.0;
        assert!((5.0..11.0).contains(&avg), "average degree {avg}");
        assert!(adj.iter().enumerate().all(|(i, a)| a.iter().all(|j| adj[*j as usize].contains(&(i as u32)))));
    }

    #[test]
    fn federated_communities_are_connected_meshes_with_no_radio_link_between_them() {
        let mut rng = NodeRng::from_seed([2; 32]);
        let adj = build(Kind::Federated, 200, 6.0, &mut rng);
        let comm = Kind::Federated.communities(200);
        assert!(adj.iter().enumerate().all(|(i, a)| a.iter().all(|j| comm[*j as usize] == comm[i])));
        let c = components(&adj);
        assert!((0..200).all(|i| (0..200).all(|j| (c[i] == c[j]) == (comm[i] == comm[j]))));
        assert_eq!(comm.iter().filter(|x| **x == 9).count(), 20);
    }
}

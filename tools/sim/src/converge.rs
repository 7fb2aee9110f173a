//! Route convergence: whether every running node's routes lead to every
//! other running node over links that exist, and which link to cut so the
//! topology stays connected. The engine cuts a link and samples this check
//! to report how long the routes took to settle.
//!
//! Deliberately not here: running nodes or changing the topology
//! (engine.rs does both), and any judgement of route quality (a route that
//! arrives is correct; it need not be the shortest).

use std::collections::{HashMap, VecDeque};

use meshpost_proto::identity::NodeId;
use meshpost_proto::rng::NodeRng;
use rand_core::RngCore;

/// True if following next hops from every running node reaches every other
/// running node, each step over an existing link, without a loop.
/// `next[i]` maps a destination to node i's next hop towards it.
pub fn routes_lead_everywhere(adj: &[Vec<u32>], up: &[bool], ids: &[NodeId], next: &[HashMap<NodeId, NodeId>]) -> bool {
    let index: HashMap<NodeId, u32> = ids.iter().enumerate().map(|(i, id)| (*id, i as u32)).collect();
    let n = adj.len();
    for s in (0..n).filter(|s| up[*s]) {
        for d in (0..n).filter(|d| *d != s && up[*d]) {
            let (mut cur, mut steps) = (s, 0);
            while cur != d {
                let Some(j) = next[cur].get(&ids[d]).and_then(|v| index.get(v)).map(|j| *j as usize) else {
                    return false;
                };
                if adj[cur].binary_search(&(j as u32)).is_err() || !up[j] || steps > n {
                    return false;
                }
                (cur, steps) = (j, steps + 1);
            }
        }
    }
    true
}

/// Whether all nodes are in one component.
pub fn connected(adj: &[Vec<u32>]) -> bool {
    let mut seen = vec![false; adj.len()];
    let mut queue = VecDeque::from([0u32]);
    seen[0] = true;
    while let Some(a) = queue.pop_front() {
        for &b in &adj[a as usize] {
            if !seen[b as usize] {
                seen[b as usize] = true;
                queue.push_back(b);
            }
        }
    }
    seen.iter().all(|s| *s)
}

/// A link whose loss leaves the graph connected, chosen at random among
/// those `used` says carry traffic (None if every such link is a bridge).
pub fn removable_edge(adj: &[Vec<u32>], rng: &mut NodeRng, used: impl Fn(u32, u32) -> bool) -> Option<(u32, u32)> {
    let mut edges: Vec<(u32, u32)> = adj
        .iter()
        .enumerate()
        .flat_map(|(a, bs)| bs.iter().filter(move |b| **b > a as u32).map(move |b| (a as u32, *b)))
        .filter(|&(a, b)| used(a, b))
        .collect();
    while !edges.is_empty() {
        let k = (rng.next_u64() % edges.len() as u64) as usize;
        let (a, b) = edges.swap_remove(k);
        let mut cut = adj.to_vec();
        remove_edge(&mut cut, a, b);
        if connected(&cut) {
            return Some((a, b));
        }
    }
    None
}

pub fn remove_edge(adj: &mut [Vec<u32>], a: u32, b: u32) {
    adj[a as usize].retain(|x| *x != b);
    adj[b as usize].retain(|x| *x != a);
}

pub fn add_edge(adj: &mut [Vec<u32>], a: u32, b: u32) {
    for (x, y) in [(a, b), (b, a)] {
        if let Err(k) = adj[x as usize].binary_search(&y) {
            adj[x as usize].insert(k, y);
        }
    }
}

/// The links to cut to split the graph in two halves: the first half is
/// the nodes a breadth-first search from node 0 reaches first (one
/// region, as when a backbone link fails), the rest the other.
pub fn split_in_half(adj: &[Vec<u32>]) -> Vec<(u32, u32)> {
    let n = adj.len();
    let mut first = vec![false; n];
    let mut queue = VecDeque::from([0u32]);
    let mut taken = 0;
    if n > 0 {
        first[0] = true;
        taken = 1;
    }
    while let Some(a) = queue.pop_front() {
        for &b in &adj[a as usize] {
            if taken < n / 2 && !first[b as usize] {
                first[b as usize] = true;
                taken += 1;
                queue.push_back(b);
            }
        }
    }
    (0..n as u32)
        .filter(|a| first[*a as usize])
        .flat_map(|a| adj[a as usize].iter().filter(|b| !first[**b as usize]).map(move |b| (a, *b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_leaves_two_halves_and_healing_restores_the_graph() {
        // A line 0-1-2-3-4-5 with a chord 1-4.
        let mut adj: Vec<Vec<u32>> = vec![vec![1], vec![0, 2, 4], vec![1, 3], vec![2, 4], vec![1, 3, 5], vec![4]];
        let before = adj.clone();
        let cut = split_in_half(&adj);
        assert_eq!(cut, vec![(1, 4), (2, 3)]);
        for &(a, b) in &cut {
            remove_edge(&mut adj, a, b);
        }
        assert!(!connected(&adj));
        for &(a, b) in &cut {
            add_edge(&mut adj, a, b);
        }
        assert_eq!(adj, before);
    }

    fn ids(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId([i as u8; 16])).collect()
    }

    #[test]
    fn a_line_routed_hop_by_hop_leads_everywhere_and_a_broken_hop_does_not() {
        // 0 - 1 - 2
        let adj = vec![vec![1], vec![0, 2], vec![1]];
        let id = ids(3);
        let mut next = vec![HashMap::new(); 3];
        next[0].extend([(id[1], id[1]), (id[2], id[1])]);
        next[1].extend([(id[0], id[0]), (id[2], id[2])]);
        next[2].extend([(id[1], id[1]), (id[0], id[1])]);
        assert!(routes_lead_everywhere(&adj, &[true; 3], &id, &next));
        // Node 0 routes to 2 directly, but there is no such link.
        next[0].insert(id[2], id[2]);
        assert!(!routes_lead_everywhere(&adj, &[true; 3], &id, &next));
        // A loop between 0 and 1 towards 2.
        next[0].insert(id[2], id[1]);
        next[1].insert(id[2], id[0]);
        assert!(!routes_lead_everywhere(&adj, &[true; 3], &id, &next));
        // A node that is away needs no route, and is not routed through.
        assert!(routes_lead_everywhere(&adj, &[true, true, false], &id, &next));
    }

    #[test]
    fn a_removable_edge_keeps_the_graph_connected() {
        // A triangle with a tail: only triangle edges may go.
        let adj = vec![vec![1, 2], vec![0, 2], vec![0, 1, 3], vec![2]];
        let mut rng = NodeRng::from_seed([1; 32]);
        for _ in 0..20 {
            let (a, b) = removable_edge(&adj, &mut rng, |_, _| true).unwrap();
            assert!(b != 3 && a != 3);
        }
        assert_eq!(removable_edge(&[vec![1], vec![0]], &mut rng, |_, _| true), None);
    }
}

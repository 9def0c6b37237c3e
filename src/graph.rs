//! A directed graph over `u32` node indices, and the few algorithms multiarch
//! runs on one: a deterministic topological order, cycles, closures and the
//! longest chain. No domain types: validate runs it over images, plan over
//! images and steps, exec over the steps of a sealed plan.
//!
//! Edges are stored twice in compressed rows (successors and predecessors), each
//! row in the order the edges were given, so every walk is deterministic.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// An edge `a → b` as given to [`Dag::from_edges`]. What the direction means is
/// the caller's: plan and exec use "a must finish before b", validate uses
/// "a depends on b".
pub type Edge = (u32, u32);

#[derive(Debug, Clone, Default)]
pub struct Dag {
    succ: Rows,
    pred: Rows,
}

/// Compressed rows: the neighbours of node `i` are `targets[offsets[i]..offsets[i + 1]]`,
/// and `edge_ids` says which input edge each slot came from.
#[derive(Debug, Clone, Default)]
struct Rows {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    edge_ids: Vec<u32>,
}

impl Rows {
    /// One row per node; `key(edge)` is the (row, target) of an edge.
    fn build(n: usize, edges: &[Edge], key: impl Fn(Edge) -> (u32, u32)) -> Rows {
        let mut offsets = vec![0u32; n + 1];
        for &e in edges {
            offsets[key(e).0 as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; edges.len()];
        let mut edge_ids = vec![0u32; edges.len()];
        for (id, &e) in edges.iter().enumerate() {
            let (row, target) = key(e);
            let slot = &mut fill[row as usize];
            targets[*slot as usize] = target;
            edge_ids[*slot as usize] = id as u32;
            *slot += 1;
        }
        Rows {
            offsets,
            targets,
            edge_ids,
        }
    }

    fn range(&self, i: u32) -> std::ops::Range<usize> {
        self.offsets[i as usize] as usize..self.offsets[i as usize + 1] as usize
    }

    fn row(&self, i: u32) -> &[u32] {
        &self.targets[self.range(i)]
    }
}

/// A cycle found by [`Dag::cycles`]: the indices (into the edges given to
/// [`Dag::from_edges`]) of the edges along it, in order. The last edge closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub edges: Vec<u32>,
}

impl Dag {
    /// A graph of `n` nodes. Every edge's ends must be below `n`.
    pub fn from_edges(n: usize, edges: &[Edge]) -> Dag {
        debug_assert!(edges
            .iter()
            .all(|&(a, b)| (a as usize) < n && (b as usize) < n));
        Dag {
            succ: Rows::build(n, edges, |(a, b)| (a, b)),
            pred: Rows::build(n, edges, |(a, b)| (b, a)),
        }
    }

    pub fn len(&self) -> usize {
        self.succ.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nodes `i` points to, in the order the edges were given.
    pub fn succs(&self, i: u32) -> &[u32] {
        self.succ.row(i)
    }

    /// The nodes that point to `i`, in the order the edges were given.
    pub fn preds(&self, i: u32) -> &[u32] {
        self.pred.row(i)
    }

    /// Kahn's algorithm taking the smallest ready index first: every edge `a → b`
    /// puts `a` before `b`, and among nodes free to go, the lowest index goes
    /// first (so a graph whose edges all point to higher indices keeps its
    /// order). `None` when there is a cycle.
    pub fn topo_order_min_index(&self) -> Option<Vec<u32>> {
        let n = self.len();
        let mut indeg: Vec<u32> = (0..n as u32).map(|i| self.preds(i).len() as u32).collect();
        let mut heap: BinaryHeap<Reverse<u32>> = (0..n as u32)
            .filter(|&i| indeg[i as usize] == 0)
            .map(Reverse)
            .collect();
        let mut out = Vec::with_capacity(n);
        while let Some(Reverse(i)) = heap.pop() {
            out.push(i);
            for &s in self.succs(i) {
                indeg[s as usize] -= 1;
                if indeg[s as usize] == 0 {
                    heap.push(Reverse(s));
                }
            }
        }
        (out.len() == n).then_some(out)
    }

    /// Every cycle a depth-first search meets, once per set of members: roots
    /// in index order, successors in edge order, a cycle found when an edge
    /// reaches a node still on the path.
    pub fn cycles(&self) -> Vec<Cycle> {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let n = self.len();
        let mut state = vec![NEW; n];
        // The path: (node, the slot of its edge being followed).
        let mut path: Vec<(u32, usize)> = Vec::new();
        let mut reported: BTreeSet<Vec<u32>> = BTreeSet::new();
        let mut found = Vec::new();
        for root in 0..n as u32 {
            if state[root as usize] != NEW {
                continue;
            }
            state[root as usize] = ON_PATH;
            // Each frame: the node and the next slot of its row to follow.
            let mut frames: Vec<(u32, usize)> = vec![(root, self.succ.range(root).start)];
            while let Some(&mut (node, ref mut slot)) = frames.last_mut() {
                let end = self.succ.range(node).end;
                if *slot == end {
                    state[node as usize] = DONE;
                    frames.pop();
                    path.pop();
                    continue;
                }
                let at = *slot;
                *slot += 1;
                let target = self.succ.targets[at];
                match state[target as usize] {
                    ON_PATH => {
                        path.push((node, at));
                        let start = path.iter().position(|&(x, _)| x == target).unwrap_or(0);
                        let mut key: Vec<u32> = path[start..].iter().map(|&(x, _)| x).collect();
                        key.sort_unstable();
                        if reported.insert(key) {
                            found.push(Cycle {
                                edges: path[start..]
                                    .iter()
                                    .map(|&(_, s)| self.succ.edge_ids[s])
                                    .collect(),
                            });
                        }
                        path.pop();
                    }
                    DONE => {}
                    _ => {
                        path.push((node, at));
                        state[target as usize] = ON_PATH;
                        frames.push((target, self.succ.range(target).start));
                    }
                }
            }
        }
        found
    }

    /// `seed` and every node reachable from it along the edges.
    pub fn closure_down(&self, seed: &[bool]) -> Vec<bool> {
        self.closure(seed, |i| self.succs(i))
    }

    /// `seed` and every node that reaches it along the edges.
    pub fn closure_up(&self, seed: &[bool]) -> Vec<bool> {
        self.closure(seed, |i| self.preds(i))
    }

    fn closure<'d>(&'d self, seed: &[bool], next: impl Fn(u32) -> &'d [u32]) -> Vec<bool> {
        let mut marked = seed.to_vec();
        marked.resize(self.len(), false);
        let mut todo: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| marked[i as usize])
            .collect();
        while let Some(i) = todo.pop() {
            for &j in next(i) {
                if !marked[j as usize] {
                    marked[j as usize] = true;
                    todo.push(j);
                }
            }
        }
        marked
    }

    /// For each node, the number of nodes on the longest path that starts at it
    /// (itself included). Nodes on a cycle count only what follows the cycle.
    pub fn longest_chain(&self) -> Vec<u32> {
        let mut depth = vec![1u32; self.len()];
        let order = self
            .topo_order_min_index()
            .unwrap_or_else(|| (0..self.len() as u32).collect());
        for &i in order.iter().rev() {
            depth[i as usize] = 1 + self
                .succs(i)
                .iter()
                .map(|&s| depth[s as usize])
                .max()
                .unwrap_or(0);
        }
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_the_order_edges_were_given() {
        let g = Dag::from_edges(4, &[(0, 3), (0, 1), (2, 1), (0, 2)]);
        assert_eq!(g.succs(0), &[3, 1, 2]);
        assert_eq!(g.preds(1), &[0, 2]);
        assert_eq!(g.succs(3), &[] as &[u32]);
        assert_eq!(g.len(), 4);
    }

    #[test]
    fn topo_order_takes_the_smallest_ready_index() {
        // 3 → 0, 2 → 1: 2 and 3 are ready; 2 goes first, which frees 1, the
        // smallest ready index then; 3 frees 0.
        let g = Dag::from_edges(4, &[(3, 0), (2, 1)]);
        assert_eq!(g.topo_order_min_index(), Some(vec![2, 1, 3, 0]));
        let forward = Dag::from_edges(5, &[(0, 2), (1, 2), (2, 4), (0, 3)]);
        assert_eq!(forward.topo_order_min_index(), Some(vec![0, 1, 2, 3, 4]));
        let cyclic = Dag::from_edges(3, &[(0, 1), (1, 2), (2, 1)]);
        assert_eq!(cyclic.topo_order_min_index(), None);
    }

    #[test]
    fn cycles_are_found_once_each_with_their_edges_in_path_order() {
        // 0 → 1 → 2 → 0, and 3 ⇄ 4, and a self-contained chain 5 → 6.
        let edges = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 3), (5, 6)];
        let g = Dag::from_edges(7, &edges);
        let c = g.cycles();
        assert_eq!(
            c,
            vec![
                Cycle {
                    edges: vec![0, 1, 2]
                },
                Cycle { edges: vec![3, 4] }
            ]
        );
        // The same members reached again from another root are not a new cycle.
        let g = Dag::from_edges(3, &[(0, 1), (1, 0), (2, 0)]);
        assert_eq!(g.cycles(), vec![Cycle { edges: vec![0, 1] }]);
        assert!(Dag::from_edges(3, &[(0, 1), (1, 2)]).cycles().is_empty());
    }

    #[test]
    fn a_cycle_below_the_root_starts_where_it_closes() {
        // 0 → 1 → 2 → 1: the cycle is 1 → 2 → 1, not the path from 0.
        let g = Dag::from_edges(3, &[(0, 1), (1, 2), (2, 1)]);
        assert_eq!(g.cycles(), vec![Cycle { edges: vec![1, 2] }]);
    }

    #[test]
    fn closures_follow_the_edges_each_way() {
        // 0 → 1 → 2, 3 → 2
        let g = Dag::from_edges(4, &[(0, 1), (1, 2), (3, 2)]);
        let seed = [false, true, false, false];
        assert_eq!(g.closure_down(&seed), vec![false, true, true, false]);
        assert_eq!(g.closure_up(&seed), vec![true, true, false, false]);
    }

    #[test]
    fn longest_chain_counts_the_nodes_that_wait() {
        // 0 → 1 → 2, 0 → 3
        let g = Dag::from_edges(4, &[(0, 1), (1, 2), (0, 3)]);
        assert_eq!(g.longest_chain(), vec![3, 2, 1, 1]);
    }
}

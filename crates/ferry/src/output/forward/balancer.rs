//! Weighted load balancing over healthy servers, after Fluentd's `LoadBalancer`.
//!
//! [`weight_array`] is `rebuild_weight_array`: servers with weight 0 take nothing; the weights
//! of the servers in rotation are divided by their GCD and each server appears `weight/gcd`
//! times; the array is repeated until it holds at least 6 entries per server (so rotation
//! stays even while a crashed server is being detected) and shuffled with a seed fixed per
//! output. Standby servers join the rotation per [`StandbyPolicy`]. The array is rebuilt
//! whenever a server is detached or recovers, and whenever the server set changes (service
//! discovery); [`Balancer::pick`] walks it round robin and skips servers that are not healthy
//! (their state may have changed since the rebuild), that left the set, or were already tried
//! for the request at hand. The rotation names servers by their ids, never by position, so a
//! rotation built before the set changed never points at another server.

use super::config::StandbyPolicy;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// What the balancer needs to know of a server.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// The server's id ([`super::node::Node::id`]).
    pub id: usize,
    pub weight: u32,
    pub standby: bool,
    pub available: bool,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The rotation: server ids, each repeated by weight.
pub fn weight_array(nodes: &[Candidate], policy: StandbyPolicy, seed: u64) -> Vec<usize> {
    let weighted = nodes
        .iter()
        .map(|n| (n.id, n))
        .filter(|(_, n)| n.weight > 0);
    let (standby, regular): (Vec<_>, Vec<_>) = weighted.partition(|(_, n)| n.standby);
    let mut chosen: Vec<(usize, u32)> = Vec::new();
    match policy {
        StandbyPolicy::WhenAllDown => {
            chosen.extend(
                regular
                    .iter()
                    .filter(|(_, n)| n.available)
                    .map(|(i, n)| (*i, n.weight)),
            );
            if chosen.is_empty() {
                chosen.extend(
                    standby
                        .iter()
                        .filter(|(_, n)| n.available)
                        .map(|(i, n)| (*i, n.weight)),
                );
            }
        }
        StandbyPolicy::CoverLostWeight => {
            // As Fluentd: every regular server stays in the array (unavailable ones are skipped
            // when picking); standby servers cover the weight the unavailable ones lost.
            let mut lost: i64 = regular
                .iter()
                .filter(|(_, n)| !n.available)
                .map(|(_, n)| i64::from(n.weight))
                .sum();
            chosen.extend(regular.iter().map(|(i, n)| (*i, n.weight)));
            for (i, n) in &standby {
                if lost <= 0 {
                    break;
                }
                if n.available {
                    chosen.push((*i, n.weight));
                    lost -= i64::from(n.weight);
                }
            }
        }
    }
    let Some(first) = chosen.first() else {
        return Vec::new();
    };
    let g = chosen.iter().fold(first.1, |g, (_, w)| gcd(g, *w)).max(1);
    let mut array: Vec<usize> = chosen
        .iter()
        .flat_map(|(i, w)| std::iter::repeat_n(*i, (*w / g) as usize))
        .collect();
    let coe = (chosen.len() * 6) / array.len();
    if coe > 1 {
        let once = array.clone();
        for _ in 1..coe {
            array.extend_from_slice(&once);
        }
    }
    array.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    array
}

#[derive(Debug)]
pub struct Balancer {
    array: RwLock<Arc<Vec<usize>>>,
    next: AtomicUsize,
    seed: u64,
    policy: StandbyPolicy,
}

impl Balancer {
    pub fn new(policy: StandbyPolicy) -> Self {
        Self {
            array: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
            seed: rand::random(),
            policy,
        }
    }

    /// Rebuilds the rotation from the servers' current state.
    pub fn rebuild(&self, nodes: &[Candidate]) {
        let array = Arc::new(weight_array(nodes, self.policy, self.seed));
        if array.is_empty() {
            tracing::warn!("No nodes are available");
        }
        *self.array.write().unwrap_or_else(PoisonError::into_inner) = array;
    }

    fn snapshot(&self) -> Arc<Vec<usize>> {
        Arc::clone(&self.array.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The next server in rotation (by id) that `usable` takes, and what it made of it.
    pub fn pick<T>(&self, usable: impl Fn(usize) -> Option<T>) -> Option<T> {
        let array = self.snapshot();
        let n = array.len();
        for _ in 0..n {
            let at = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if let Some(t) = usable(array[at]) {
                return Some(t);
            }
        }
        None
    }

    /// Servers in the rotation (distinct).
    pub fn in_rotation(&self) -> Vec<usize> {
        let mut v = self.snapshot().to_vec();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A candidate whose id is set by [`ids`].
    fn c(weight: u32, standby: bool, available: bool) -> Candidate {
        Candidate {
            id: 0,
            weight,
            standby,
            available,
        }
    }

    /// Numbers the candidates by position.
    fn ids<const N: usize>(mut nodes: [Candidate; N]) -> [Candidate; N] {
        for (i, n) in nodes.iter_mut().enumerate() {
            n.id = i;
        }
        nodes
    }

    fn counts(array: &[usize], n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| array.iter().filter(|&&x| x == i).count())
            .collect()
    }

    #[test]
    fn weights_are_reduced_by_their_gcd_and_repeated_to_six_per_server() {
        let nodes = ids([c(60, false, true), c(60, false, true)]);
        let a = weight_array(&nodes, StandbyPolicy::WhenAllDown, 1);
        assert_eq!(counts(&a, 2), vec![6, 6]);
        let nodes = ids([c(20, false, true), c(60, false, true)]);
        let a = weight_array(&nodes, StandbyPolicy::WhenAllDown, 1);
        // 1:3 -> 4 entries, coe = 12 / 4 = 3
        assert_eq!(counts(&a, 2), vec![3, 9]);
    }

    #[test]
    fn weight_zero_takes_nothing_and_unavailable_servers_leave_the_rotation() {
        let nodes = ids([c(0, false, true), c(60, false, false), c(60, false, true)]);
        let a = weight_array(&nodes, StandbyPolicy::WhenAllDown, 7);
        assert_eq!(counts(&a, 3), vec![0, 0, 6]);
    }

    #[test]
    fn standby_takes_load_only_when_no_regular_server_is_healthy() {
        let up = ids([c(60, false, true), c(60, false, false), c(60, true, true)]);
        let a = weight_array(&up, StandbyPolicy::WhenAllDown, 3);
        assert_eq!(counts(&a, 3)[2], 0);
        let down = ids([c(60, false, false), c(60, false, false), c(60, true, true)]);
        let a = weight_array(&down, StandbyPolicy::WhenAllDown, 3);
        assert_eq!(counts(&a, 3), vec![0, 0, 6]);
    }

    #[test]
    fn fluentds_policy_promotes_standby_to_cover_lost_weight() {
        let nodes = ids([
            c(60, false, true),
            c(60, false, false),
            c(30, true, true),
            c(30, true, true),
            c(30, true, true),
        ]);
        let a = weight_array(&nodes, StandbyPolicy::CoverLostWeight, 3);
        let k = counts(&a, 5);
        assert!(k[2] > 0 && k[3] > 0, "two standbys cover 60: {k:?}");
        assert_eq!(k[4], 0);
        let all_up = ids([c(60, false, true), c(60, true, true)]);
        let a = weight_array(&all_up, StandbyPolicy::CoverLostWeight, 3);
        assert_eq!(counts(&a, 2)[1], 0);
    }

    #[test]
    fn standby_policy_chooses_when_standby_servers_take_load() {
        let policy = |line: &str| {
            let text = format!("<match>\n{line}\n<server>\nhost a\n</server>\n</match>\n");
            crate::plugin::read_section(
                &text,
                crate::output::forward::config::ForwardConfig::from_section,
            )
            .unwrap()
            .standby_policy
        };
        // One of two regular servers is down; the standby is up.
        let nodes = ids([c(60, false, true), c(60, false, false), c(60, true, true)]);
        let standby_share = |p| counts(&weight_array(&nodes, p, 3), 3)[2];
        assert_eq!(standby_share(policy("")), 0, "when_all_down by default");
        assert_eq!(standby_share(policy("standby_policy when_all_down")), 0);
        assert!(standby_share(policy("standby_policy cover_lost_weight")) > 0);
    }

    #[test]
    fn nothing_healthy_is_an_empty_rotation() {
        let nodes = ids([c(60, false, false), c(60, true, false)]);
        assert!(weight_array(&nodes, StandbyPolicy::WhenAllDown, 0).is_empty());
        let b = Balancer::new(StandbyPolicy::WhenAllDown);
        b.rebuild(&nodes);
        assert_eq!(b.pick(Some), None);
    }

    #[test]
    fn picking_is_round_robin_over_the_weighted_rotation_and_skips_refused_servers() {
        let b = Balancer::new(StandbyPolicy::WhenAllDown);
        b.rebuild(&ids([c(60, false, true), c(20, false, true)]));
        let mut seen = [0usize; 2];
        for _ in 0..480 {
            seen[b.pick(Some).unwrap()] += 1;
        }
        assert_eq!(seen, [360, 120]);
        assert_eq!(b.pick(|i| (i == 1).then_some(i)), Some(1));
        assert_eq!(b.pick(|_| None::<usize>), None);
    }
}

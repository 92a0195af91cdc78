//! Placement of receive queues on PMD threads.
//!
//! Every PMD thread holds one instance of every port (so that any PMD can transmit anywhere),
//! but the instances differ in how many receive queues they poll: a device with one queue opened
//! for three PMDs gives the queue to one instance and none to the others. Which PMD gets which
//! instance is a rotation: instance `i` of a port with rotation `r` runs on PMD `(i + r) % n`.
//! Choosing the rotation per port spreads the queues, the way OVS assigns rxqs round-robin.

/// The rotation for a new port whose instances poll `rxqs[i]` queues, given the current load of
/// each PMD: the one that leaves the busiest PMD least busy (then the most even spread, then
/// the smallest rotation).
pub fn best_rotation(load: &[usize], rxqs: &[usize]) -> usize {
    let n = load.len();
    if n == 0 {
        return 0;
    }
    (0..n)
        .min_by_key(|&rot| {
            let mut l = load.to_vec();
            for (i, q) in rxqs.iter().enumerate() {
                l[(i + rot) % n] += q;
            }
            let max = l.iter().copied().max().unwrap_or(0);
            let squares: usize = l.iter().map(|x| x * x).sum();
            (max, squares, rot)
        })
        .unwrap_or(0)
}

/// Rotations for all `ports` (each the rxq count of its instances) placed from scratch over `n`
/// PMDs: ports with the most queues first, each at its [`best_rotation`].
pub fn assign(ports: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ports.len()).collect();
    // Big ports first (stable, so equal ports keep their order).
    order.sort_by_key(|&p| std::cmp::Reverse(ports[p].iter().sum::<usize>()));
    let mut load = vec![0; n];
    let mut rot = vec![0; ports.len()];
    for p in order {
        let r = best_rotation(&load, &ports[p]);
        for (i, q) in ports[p].iter().enumerate() {
            load[(i + r) % n] += q;
        }
        rot[p] = r;
    }
    rot
}

/// Receive queues each of `n` PMDs polls when instance `i` of port `p` (polling `ports[p][i]`
/// queues) runs on PMD `(i + rotations[p]) % n`.
pub fn pmd_loads(ports: &[Vec<usize>], rotations: &[usize], n: usize) -> Vec<usize> {
    let mut load = vec![0; n];
    for (rxqs, rot) in ports.iter().zip(rotations) {
        for (i, q) in rxqs.iter().enumerate() {
            load[(i + rot) % n] += q;
        }
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_queue_ports_spread_over_pmds() {
        // Four veths with one queue each, three PMDs: instance 0 has the queue.
        let ports = vec![vec![1, 0, 0]; 4];
        let rot = assign(&ports, 3);
        assert_eq!(pmd_loads(&ports, &rot, 3), vec![2, 1, 1]);
        let mut load = vec![0; 3];
        let mut placed = Vec::new();
        for p in &ports {
            let r = best_rotation(&load, p);
            load[r % 3] += 1;
            placed.push(r);
        }
        assert_eq!(placed, vec![0, 1, 2, 0]);
    }

    #[test]
    fn multiqueue_ports_stay_even() {
        let ports = vec![vec![1, 1], vec![2, 1], vec![1, 0]];
        let rot = assign(&ports, 2);
        let l = pmd_loads(&ports, &rot, 2);
        assert_eq!(l.iter().sum::<usize>(), 6);
        assert_eq!(l, vec![3, 3]);
    }

    #[test]
    fn rebalances_after_a_port_leaves() {
        // Placed one by one, then the port on PMD 1 leaves: from scratch the rest spread again.
        let ports = vec![vec![1, 0], vec![1, 0], vec![1, 0]];
        let rot = assign(&ports, 2);
        assert_eq!(pmd_loads(&ports, &rot, 2), vec![2, 1]);
        let left: Vec<Vec<usize>> = vec![ports[0].clone(), ports[2].clone()];
        let rot = assign(&left, 2);
        assert_eq!(pmd_loads(&left, &rot, 2), vec![1, 1]);
    }

    #[test]
    fn one_pmd_takes_everything() {
        let ports = vec![vec![3], vec![1]];
        assert_eq!(assign(&ports, 1), vec![0, 0]);
        assert_eq!(best_rotation(&[], &[1]), 0);
    }
}

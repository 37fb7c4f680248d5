//! Where a new partition's replicas go: round robin over the live brokers, each partition starting one broker
//! further than the last, so leaders (first replicas) spread evenly and a partition's replicas are distinct.

/// Why replicas cannot be placed: Kafka's INVALID_REPLICATION_FACTOR, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
pub struct NotEnoughBrokers {
    pub replication_factor: i16,
    pub brokers: usize,
}

/// Replicas for partitions `first..first + count`, over `brokers` (ids, any order), `replication_factor`
/// each. `first` keeps a topic's later partitions in the same rotation as its first ones.
pub fn place(
    brokers: &[i32],
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, NotEnoughBrokers> {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > sorted.len() {
        return Err(NotEnoughBrokers {
            replication_factor,
            brokers: sorted.len(),
        });
    }
    let n = sorted.len();
    Ok((first..first.saturating_add(count.max(0)))
        .map(|p| {
            let start = usize::try_from(p).unwrap_or(0) % n;
            (0..rf).map(|k| sorted[(start + k) % n]).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_and_leaders_rotate() {
        let placed = place(&[3, 1, 2], 0, 4, 2).unwrap();
        assert_eq!(placed, vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]);
        // Partitions added later continue the rotation.
        assert_eq!(place(&[1, 2, 3], 4, 2, 1).unwrap(), vec![vec![2], vec![3]]);
        assert_eq!(place(&[7], 0, 2, 1).unwrap(), vec![vec![7], vec![7]]);
    }

    #[test]
    fn more_replicas_than_brokers_is_refused_with_kafkas_message() {
        let e = place(&[1, 2], 0, 1, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Replication factor: 3 larger than available brokers: 2."
        );
        assert!(place(&[1], 0, 1, 0).is_err());
        assert!(place(&[], 0, 1, 1).is_err());
    }
}

//! Where a new partition's replicas go: round robin over the live brokers, each partition starting one broker
//! further than the last, so leaders (first replicas) spread evenly and a partition's replicas are distinct.
//! Each topic starts the rotation at its own broker (the caller picks it at random, as Kafka does), or
//! thousands of one-partition topics would all lead on the same broker.

/// Why replicas cannot be placed: Kafka's INVALID_REPLICATION_FACTOR, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
pub struct NotEnoughBrokers {
    pub replication_factor: i16,
    pub brokers: usize,
}

/// Where an existing topic's rotation starts: the position of its partition 0's leader among `brokers`.
pub fn start_of(brokers: &[i32], assignment: &[Vec<i32>]) -> usize {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    assignment
        .first()
        .and_then(|r| r.first())
        .and_then(|leader| sorted.iter().position(|b| b == leader))
        .unwrap_or(0)
}

/// Replicas for partitions `first..first + count`, over `brokers` (ids, any order), `replication_factor`
/// each, partition 0 led by the `start`-th broker in id order (modulo their number). `first` keeps a topic's
/// later partitions in the same rotation as its first ones.
pub fn place(
    brokers: &[i32],
    first: i32,
    count: i32,
    replication_factor: i16,
    start: usize,
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
            let lead = (start % n + usize::try_from(p).unwrap_or(0)) % n;
            (0..rf).map(|k| sorted[(lead + k) % n]).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_and_leaders_rotate() {
        let placed = place(&[3, 1, 2], 0, 4, 2, 0).unwrap();
        assert_eq!(placed, vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]);
        // Partitions added later continue the rotation.
        assert_eq!(
            place(&[1, 2, 3], 4, 2, 1, 0).unwrap(),
            vec![vec![2], vec![3]]
        );
        assert_eq!(place(&[7], 0, 2, 1, 5).unwrap(), vec![vec![7], vec![7]]);
        // Another start shifts the whole rotation, and the topic's own start is found again.
        let shifted = place(&[1, 2, 3], 0, 2, 2, 4).unwrap();
        assert_eq!(shifted, vec![vec![2, 3], vec![3, 1]]);
        assert_eq!(start_of(&[3, 2, 1], &shifted), 1);
        assert_eq!(
            place(&[1, 2, 3], 2, 1, 2, start_of(&[1, 2, 3], &shifted)).unwrap(),
            vec![vec![1, 2]]
        );
    }

    #[test]
    fn more_replicas_than_brokers_is_refused_with_kafkas_message() {
        let e = place(&[1, 2], 0, 1, 3, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Replication factor: 3 larger than available brokers: 2."
        );
        assert!(place(&[1], 0, 1, 0, 0).is_err());
        assert!(place(&[], 0, 1, 1, 0).is_err());
    }
}

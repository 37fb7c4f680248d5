//! Where a new partition's replicas go: round robin over the live brokers, each partition starting one broker
//! further than the last, so leaders (first replicas) spread evenly and a partition's replicas are distinct.
//! Each topic starts the rotation at its own broker (the caller picks it at random, as Kafka does), or
//! thousands of one-partition topics would all lead on the same broker. When brokers name their racks
//! (`broker.rack`), a partition's replicas go to as many different racks as there are (`place_on_racks`).

/// Why replicas cannot be placed: Kafka's INVALID_REPLICATION_FACTOR, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
pub struct NotEnoughBrokers {
    pub replication_factor: i16,
    pub brokers: usize,
}

/// Where an existing topic's rotation starts: the position of its partition 0's preferred leader (the first
/// of `first_replicas`) among `brokers`.
pub fn start_of(brokers: &[i32], first_replicas: &[i32]) -> usize {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    first_replicas
        .first()
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

/// As `place`, over brokers with their racks: the brokers are ordered alternating between racks (each rack's
/// brokers by id), and each partition's replicas are taken from its leader onwards in that order, skipping a
/// broker whose rack the partition already uses until every rack has a replica. Without racks this is `place`.
pub fn place_on_racks(
    brokers: &[(i32, Option<String>)],
    first: i32,
    count: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, NotEnoughBrokers> {
    let ids: Vec<i32> = brokers.iter().map(|(id, _)| *id).collect();
    if brokers.iter().all(|(_, rack)| rack.is_none()) {
        return place(&ids, first, count, replication_factor, start);
    }
    let mut by_rack: std::collections::BTreeMap<&str, Vec<i32>> = std::collections::BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
        ids.dedup();
    }
    let mut alternated: Vec<(i32, &str)> = Vec::new();
    for i in 0.. {
        let before = alternated.len();
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                alternated.push((*id, rack));
            }
        }
        if alternated.len() == before {
            break;
        }
    }
    let n = alternated.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > n {
        return Err(NotEnoughBrokers {
            replication_factor,
            brokers: n,
        });
    }
    let racks = by_rack.len();
    Ok((first..first.saturating_add(count.max(0)))
        .map(|p| {
            let lead = (start % n + usize::try_from(p).unwrap_or(0)) % n;
            let walk: Vec<(i32, &str)> = (0..n).map(|k| alternated[(lead + k) % n]).collect();
            let mut chosen: Vec<(i32, &str)> = Vec::with_capacity(rf);
            for &(id, rack) in &walk {
                if chosen.len() < rf.min(racks) && !chosen.iter().any(|(_, r)| *r == rack) {
                    chosen.push((id, rack));
                }
            }
            for &(id, rack) in &walk {
                if chosen.len() < rf && !chosen.iter().any(|(c, _)| *c == id) {
                    chosen.push((id, rack));
                }
            }
            chosen.into_iter().map(|(id, _)| id).collect()
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
        assert_eq!(start_of(&[3, 2, 1], &shifted[0]), 1);
        assert_eq!(
            place(&[1, 2, 3], 2, 1, 2, start_of(&[1, 2, 3], &shifted[0])).unwrap(),
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

    #[test]
    fn replicas_spread_over_racks() {
        let brokers: Vec<(i32, Option<String>)> =
            [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c")]
                .iter()
                .map(|(id, r)| (*id, Some(r.to_string())))
                .collect();
        let rack = |id: i32| brokers.iter().find(|(b, _)| *b == id).unwrap().1.clone();
        let placed = place_on_racks(&brokers, 0, 10, 3, 0).unwrap();
        for replicas in &placed {
            let mut racks: Vec<_> = replicas.iter().map(|r| rack(*r)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{replicas:?} spans every rack");
        }
        // Leaders rotate over every broker.
        let mut leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        leaders.sort();
        leaders.dedup();
        assert_eq!(leaders, vec![1, 2, 3, 4, 5]);
        // More replicas than racks: the rest go to distinct brokers.
        let four = place_on_racks(&brokers, 0, 5, 4, 0).unwrap();
        for r in &four {
            let mut ids = r.clone();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 4);
        }
        let no_racks = vec![(1, None), (2, None), (3, None)];
        assert_eq!(
            place_on_racks(&no_racks, 0, 3, 2, 1).unwrap(),
            place(&[1, 2, 3], 0, 3, 2, 1).unwrap()
        );
        assert!(place_on_racks(&brokers, 0, 1, 6, 0).is_err());
    }
}

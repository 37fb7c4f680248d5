//! Which partition replicas to move when brokers leave (a scale-down drains them first) or join (a
//! scale-up spreads partitions onto them). Pure: the reconciler reads the partitions' replica lists
//! from the cluster, asks for the moves, and submits them with AlterPartitionReassignments. Nothing
//! is remembered between reconciles, so an operator restarted in the middle plans again from what
//! the cluster holds and carries on where it was.
//!
//! Every move keeps a partition's replica count and the position of each replica that stays (the
//! first replica is the preferred leader), and is deterministic: the same cluster gives the same
//! plan, so two reconciles never fight over a partition.

use std::collections::{BTreeMap, BTreeSet};

/// One partition and the brokers that hold it, in Kafka's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// A new replica list for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

/// Why brokers cannot be drained: topics whose replication factor the remaining brokers cannot
/// hold, each with that factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotDrain {
    pub remaining: usize,
    pub topics: BTreeMap<String, usize>,
}

impl std::fmt::Display for CannotDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<String> = self
            .topics
            .iter()
            .map(|(t, rf)| format!("{t} (replication factor {rf})"))
            .collect();
        write!(
            f,
            "{} broker(s) would remain, fewer than the replicas of {}",
            self.remaining,
            topics.join(", ")
        )
    }
}

/// Replicas per broker among `brokers` (every one a key, idle ones at 0).
fn load(partitions: &[Replicas], brokers: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for p in partitions {
        for b in &p.replicas {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    load
}

/// The least loaded broker of `load` not in `exclude`; the lowest id among equals.
fn least_loaded(load: &BTreeMap<i32, usize>, exclude: &[i32]) -> Option<i32> {
    load.iter()
        .filter(|(b, _)| !exclude.contains(b))
        .min_by_key(|(b, n)| (**n, **b))
        .map(|(b, _)| *b)
}

/// Moves every replica off `leaving` onto the brokers of `staying`, each to the least loaded one
/// that does not hold the partition yet. Refused, with every topic that cannot fit, when a
/// partition has more replicas than `staying` has brokers.
pub fn drain(
    partitions: &[Replicas],
    staying: &BTreeSet<i32>,
    leaving: &BTreeSet<i32>,
) -> Result<Vec<Move>, CannotDrain> {
    let too_big: BTreeMap<String, usize> = partitions
        .iter()
        .filter(|p| {
            p.replicas.iter().any(|b| leaving.contains(b)) && p.replicas.len() > staying.len()
        })
        .map(|p| (p.topic.clone(), p.replicas.len()))
        .collect();
    if !too_big.is_empty() {
        return Err(CannotDrain {
            remaining: staying.len(),
            topics: too_big,
        });
    }
    let mut load = load(partitions, staying);
    let mut sorted: Vec<&Replicas> = partitions.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut moves = Vec::new();
    for p in sorted {
        if !p.replicas.iter().any(|b| leaving.contains(b)) {
            continue;
        }
        let mut to = p.replicas.clone();
        for i in 0..to.len() {
            if !leaving.contains(&to[i]) {
                continue;
            }
            // Checked above: a partition no bigger than `staying` always finds a broker.
            let Some(target) = least_loaded(&load, &to) else {
                continue;
            };
            to[i] = target;
            *load.entry(target).or_default() += 1;
        }
        moves.push(Move {
            topic: p.topic.clone(),
            partition: p.partition,
            from: p.replicas.clone(),
            to,
        });
    }
    Ok(moves)
}

/// Partitions listed with more replicas than the fewest any partition of their topic has. A
/// partition being moved lists its new replicas and its old ones together, and a broker's
/// metadata can still show that for a moment after the controller has finished the move: planning
/// from it would make the extra replica permanent. The reconciler reads the cluster again, a few
/// times, while any is left (a topic whose partitions really differ then costs only that wait).
pub fn unsettled(partitions: &[Replicas]) -> Vec<(String, i32)> {
    let mut fewest: BTreeMap<&str, usize> = BTreeMap::new();
    for p in partitions {
        let n = fewest.entry(p.topic.as_str()).or_insert(usize::MAX);
        *n = (*n).min(p.replicas.len());
    }
    partitions
        .iter()
        .filter(|p| {
            fewest
                .get(p.topic.as_str())
                .is_some_and(|n| p.replicas.len() > *n)
        })
        .map(|p| (p.topic.clone(), p.partition))
        .collect()
}

/// The topics `moves` touch, sorted, each once.
pub fn topics(moves: &[Move]) -> Vec<String> {
    let set: BTreeSet<&str> = moves.iter().map(|m| m.topic.as_str()).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// Spreads replicas evenly over `brokers` (new brokers hold none): while the busiest broker holds
/// more than one replica more than the idlest, one replica of a partition on the busiest that the
/// idlest does not hold moves there. At most `limit` moves, so a big cluster moves in rounds.
pub fn spread(partitions: &[Replicas], brokers: &BTreeSet<i32>, limit: usize) -> Vec<Move> {
    let mut load = load(partitions, brokers);
    let mut current: Vec<Replicas> = partitions.to_vec();
    current.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut moved: BTreeMap<(String, i32), Vec<i32>> = BTreeMap::new();
    while moved.len() < limit {
        let Some((&busiest, &most)) = load.iter().max_by_key(|(b, n)| (**n, -**b)) else {
            break;
        };
        let Some((&idlest, &least)) = load.iter().min_by_key(|(b, n)| (**n, **b)) else {
            break;
        };
        if most <= least + 1 {
            break;
        }
        // A partition not moved yet this round (one move per partition per reassignment).
        let Some(p) = current.iter_mut().find(|p| {
            p.replicas.contains(&busiest)
                && !p.replicas.contains(&idlest)
                && !moved.contains_key(&(p.topic.clone(), p.partition))
        }) else {
            break;
        };
        let from = p.replicas.clone();
        for b in p.replicas.iter_mut() {
            if *b == busiest {
                *b = idlest;
            }
        }
        moved.insert((p.topic.clone(), p.partition), from);
        *load.entry(busiest).or_default() -= 1;
        *load.entry(idlest).or_default() += 1;
    }
    current
        .into_iter()
        .filter_map(|p| {
            moved
                .remove(&(p.topic.clone(), p.partition))
                .map(|from| Move {
                    topic: p.topic,
                    partition: p.partition,
                    from,
                    to: p.replicas,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32, replicas: &[i32]) -> Replicas {
        Replicas {
            topic: topic.to_owned(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    #[test]
    fn a_partition_listed_with_its_old_and_new_replicas_is_unsettled() {
        let parts = [
            p("a", 0, &[1, 2, 3]),
            p("a", 1, &[1, 2, 3, 4]),
            p("b", 0, &[1, 2]),
            p("b", 1, &[3, 4]),
        ];
        assert_eq!(unsettled(&parts), [("a".to_owned(), 1)]);
        assert!(unsettled(&parts[2..]).is_empty());
    }

    fn set(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    fn counts(partitions: &[Replicas], moves: &[Move]) -> BTreeMap<i32, usize> {
        let mut after: BTreeMap<(String, i32), Vec<i32>> = partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.replicas.clone()))
            .collect();
        for m in moves {
            after.insert((m.topic.clone(), m.partition), m.to.clone());
        }
        let mut c = BTreeMap::new();
        for r in after.values() {
            for b in r {
                *c.entry(*b).or_default() += 1;
            }
        }
        c
    }

    #[test]
    fn draining_moves_only_what_the_leaving_brokers_hold_and_keeps_positions() {
        let parts = [
            p("a", 0, &[0, 1, 2]),
            p("a", 1, &[1, 2, 3]),
            p("b", 0, &[0, 1]),
        ];
        let moves = drain(&parts, &set(&[0, 1, 2]), &set(&[3])).unwrap();
        // Only a-1 has a replica on 3; it goes to 0, the one broker a-1 does not use.
        assert_eq!(
            moves,
            vec![Move {
                topic: "a".into(),
                partition: 1,
                from: vec![1, 2, 3],
                to: vec![1, 2, 0],
            }]
        );
    }

    #[test]
    fn draining_goes_to_the_least_loaded_broker_and_stays_balanced() {
        // Brokers 3 and 4 leave; 0-2 stay. Twelve partitions of one replica each on 3 or 4.
        let parts: Vec<Replicas> = (0..12).map(|i| p("t", i, &[3 + i % 2])).collect();
        let moves = drain(&parts, &set(&[0, 1, 2]), &set(&[3, 4])).unwrap();
        assert_eq!(moves.len(), 12);
        let c = counts(&parts, &moves);
        assert_eq!(c, BTreeMap::from([(0, 4), (1, 4), (2, 4)]));
    }

    #[test]
    fn a_partition_never_gets_the_same_broker_twice() {
        let parts = [p("t", 0, &[3, 0, 4])];
        let moves = drain(&parts, &set(&[0, 1, 2]), &set(&[3, 4])).unwrap();
        let to = &moves[0].to;
        assert_eq!(to[1], 0, "a staying replica keeps its place");
        let distinct: BTreeSet<i32> = to.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{to:?}");
        assert!(to.iter().all(|b| [0, 1, 2].contains(b)));
    }

    #[test]
    fn draining_is_refused_when_a_topic_would_not_fit() {
        let parts = [
            p("wide", 0, &[0, 1, 2]),
            p("wide", 1, &[1, 2, 0]),
            p("narrow", 0, &[2, 1]),
        ];
        let err = drain(&parts, &set(&[0, 1]), &set(&[2])).unwrap_err();
        assert_eq!(err.topics, BTreeMap::from([("wide".to_owned(), 3)]));
        assert_eq!(err.remaining, 2);
        assert!(
            err.to_string().contains("wide (replication factor 3)"),
            "{err}"
        );
    }

    #[test]
    fn a_topic_that_fits_is_not_blocked_by_one_on_other_brokers() {
        // "wide" does not touch broker 3, so it does not stop 3 from leaving.
        let parts = [p("wide", 0, &[0, 1, 2]), p("t", 0, &[3])];
        assert_eq!(
            drain(&parts, &set(&[0, 1, 2]), &set(&[3])).unwrap().len(),
            1
        );
    }

    #[test]
    fn nothing_to_drain_is_no_moves() {
        let parts = [p("t", 0, &[0, 1])];
        assert!(drain(&parts, &set(&[0, 1]), &set(&[2])).unwrap().is_empty());
    }

    #[test]
    fn the_plan_is_the_same_whatever_order_partitions_come_in() {
        let mut parts: Vec<Replicas> = (0..9)
            .map(|i| p(&format!("t{}", i % 3), i, &[3, i % 3]))
            .collect();
        let a = drain(&parts, &set(&[0, 1, 2]), &set(&[3])).unwrap();
        parts.reverse();
        let b = drain(&parts, &set(&[0, 1, 2]), &set(&[3])).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn spreading_onto_new_brokers_evens_the_load() {
        // Three brokers hold 6 partitions x 3 replicas; brokers 3 and 4 join empty.
        let parts: Vec<Replicas> = (0..6).map(|i| p("t", i, &[0, 1, 2])).collect();
        let moves = spread(&parts, &set(&[0, 1, 2, 3, 4]), usize::MAX);
        let c = counts(&parts, &moves);
        let (min, max) = (c.values().min().unwrap(), c.values().max().unwrap());
        assert!(max - min <= 1, "{c:?}");
        assert_eq!(c.values().sum::<usize>(), 18);
        for m in &moves {
            let distinct: BTreeSet<i32> = m.to.iter().copied().collect();
            assert_eq!(distinct.len(), m.to.len(), "{m:?}");
        }
    }

    #[test]
    fn spreading_stops_at_the_limit_and_when_balanced() {
        let parts: Vec<Replicas> = (0..6).map(|i| p("t", i, &[0, 1, 2])).collect();
        assert_eq!(spread(&parts, &set(&[0, 1, 2, 3, 4]), 2).len(), 2);
        assert!(spread(&parts, &set(&[0, 1, 2]), usize::MAX).is_empty());
    }
}

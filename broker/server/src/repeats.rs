//! Requests that name the same thing many times. A client never does, but an attacker can: a broker
//! resource expands to hundreds of config entries and a group to all its members, so answering each repeat
//! would turn one request into a response thousands of times larger, built in memory. Handlers answer the
//! first occurrence of each distinct entry, in request order (Kafka does this for Metadata topics).

use std::collections::HashSet;
use std::hash::Hash;

/// The entries of `items` whose `key` was not seen before, in order.
pub fn first_of_each<T, K: Hash + Eq>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_of_each_key_in_order() {
        let kept = first_of_each(
            vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)],
            |x| x.0,
        );
        assert_eq!(kept, vec![("b", 1), ("a", 2), ("c", 4)]);
    }
}

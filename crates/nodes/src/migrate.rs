//! Splitting a migration into batches: the new hosts are added first, then the old hosts are
//! drained and removed a batch at a time, so only one batch's capacity is missing at once.

/// Splits `hosts` into batches of at most `size` hosts, in order. A size of 0 is taken as 1.
pub fn batches(hosts: &[String], size: usize) -> Vec<Vec<String>> {
    hosts.chunks(size.max(1)).map(<[String]>::to_vec).collect()
}

/// Returns the hosts named both as a source and as a destination.
pub fn overlap(from: &[String], to: &[String]) -> Vec<String> {
    from.iter().filter(|host| to.contains(host)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn batches_keep_order_and_size() {
        let all = hosts(&["a", "b", "c", "d", "e"]);
        assert_eq!(batches(&all, 2), [hosts(&["a", "b"]), hosts(&["c", "d"]), hosts(&["e"])]);
        assert_eq!(batches(&all, 0).len(), 5);
        assert_eq!(batches(&all, 10), [all.clone()]);
    }

    #[test]
    fn overlap_finds_shared_hosts() {
        assert_eq!(overlap(&hosts(&["a", "b"]), &hosts(&["b", "c"])), ["b"]);
        assert!(overlap(&hosts(&["a"]), &hosts(&["c"])).is_empty());
    }
}

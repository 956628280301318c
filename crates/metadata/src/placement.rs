//! Replica placement: which brokers hold each partition's replicas, and which leads.
//!
//! Brokers are ordered rack by rack in turn (the first broker of each rack, then the second
//! of each, ...), so neighbours in the order sit on different racks whenever racks are
//! balanced. Partition `p` takes `replication_factor` consecutive brokers starting at
//! `(p + offset) mod n`: replicas land on distinct racks, and leaders (the first replica)
//! rotate evenly over the brokers. Without racks the order is by node id. Pure.

use std::collections::BTreeMap;

use crate::image::BrokerImage;

/// Broker ids in placement order: interleaved by rack, by id within a rack.
pub fn placement_order<'a>(brokers: impl IntoIterator<Item = &'a BrokerImage>) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for broker in brokers {
        by_rack.entry(broker.rack.as_deref()).or_default().push(broker.node_id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(i) {
                order.push(*id);
            }
        }
    }
    order
}

/// Replicas for partitions `first..first + count` over `order` (see the module doc).
/// `offset` shifts where partition 0 starts, so that later CreatePartitions continue the
/// rotation. The caller checks `replication_factor <= order.len()`.
pub fn assign(order: &[i32], first: i32, count: i32, replication_factor: usize, offset: usize) -> Vec<Vec<i32>> {
    assert!(replication_factor >= 1 && replication_factor <= order.len(), "caller checks the replication factor");
    (first..first + count)
        .map(|p| {
            let start = (p as usize + offset) % order.len();
            (0..replication_factor).map(|r| order[(start + r) % order.len()]).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn broker(node_id: i32, rack: Option<&str>) -> BrokerImage {
        BrokerImage {
            node_id,
            host: "h".into(),
            port: 1,
            rack: rack.map(str::to_string),
            incarnation_id: Uuid::nil(),
            fenced: false,
            shutting_down: false,
        }
    }

    #[test]
    fn without_racks_leaders_rotate_over_all_brokers() {
        let brokers = [broker(3, None), broker(1, None), broker(2, None)];
        let order = placement_order(&brokers);
        assert_eq!(order, vec![1, 2, 3]);
        let replicas = assign(&order, 0, 6, 2, 0);
        let leaders: Vec<i32> = replicas.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert!(replicas.iter().all(|r| r[0] != r[1]));
    }

    #[test]
    fn with_racks_every_partition_spans_distinct_racks() {
        let brokers = [
            broker(1, Some("a")),
            broker(2, Some("a")),
            broker(3, Some("b")),
            broker(4, Some("b")),
            broker(5, Some("c")),
            broker(6, Some("c")),
        ];
        let rack_of = |id: i32| brokers.iter().find(|b| b.node_id == id).unwrap().rack.clone();
        let order = placement_order(&brokers);
        for replicas in assign(&order, 0, 12, 3, 0) {
            let mut racks: Vec<_> = replicas.iter().map(|id| rack_of(*id)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
        let mut leader_counts = BTreeMap::new();
        for replicas in assign(&order, 0, 12, 3, 0) {
            *leader_counts.entry(replicas[0]).or_insert(0) += 1;
        }
        assert!(leader_counts.values().all(|c| *c == 2), "{leader_counts:?}");
    }
}

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
/// rotation. The caller checks `replication_factor <= order.len()`. `rack_of` names each
/// broker's rack: walking the order from the partition's start, a broker on a rack the
/// partition already uses is passed over while unused racks remain, so every partition
/// spans `min(racks, replication_factor)` racks even when racks hold different numbers of
/// brokers (Kafka's rule). The leader is always the broker at the start.
pub fn assign(
    order: &[i32],
    rack_of: impl Fn(i32) -> Option<String>,
    first: i32,
    count: i32,
    replication_factor: usize,
    offset: usize,
) -> Vec<Vec<i32>> {
    assert!(replication_factor >= 1 && replication_factor <= order.len(), "caller checks the replication factor");
    let n = order.len();
    let racks: std::collections::BTreeSet<Option<String>> = order.iter().map(|id| rack_of(*id)).collect();
    (first..first + count)
        .map(|p| {
            let start = (p as usize + offset) % n;
            let walk: Vec<i32> = (0..n).map(|i| order[(start + i) % n]).collect();
            let mut replicas: Vec<i32> = Vec::with_capacity(replication_factor);
            let mut used = std::collections::BTreeSet::new();
            for id in &walk {
                if replicas.len() == replication_factor {
                    break;
                }
                let rack = rack_of(*id);
                if used.len() < racks.len() && used.contains(&rack) {
                    continue;
                }
                used.insert(rack);
                replicas.push(*id);
            }
            for id in &walk {
                if replicas.len() == replication_factor {
                    break;
                }
                if !replicas.contains(id) {
                    replicas.push(*id);
                }
            }
            replicas
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn broker(node_id: i32, rack: Option<&str>) -> BrokerImage {
        BrokerImage {
            offline_replicas: Default::default(),
            endpoints: Vec::new(),
            node_id,
            host: "h".into(),
            port: 1,
            rack: rack.map(str::to_string),
            incarnation_id: Uuid::nil(),
            epoch: 0,
            fenced: false,
            shutting_down: false,
        }
    }

    #[test]
    fn without_racks_leaders_rotate_over_all_brokers() {
        let brokers = [broker(3, None), broker(1, None), broker(2, None)];
        let order = placement_order(&brokers);
        assert_eq!(order, vec![1, 2, 3]);
        let replicas = assign(&order, |_| None, 0, 6, 2, 0);
        let leaders: Vec<i32> = replicas.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert!(replicas.iter().all(|r| r[0] != r[1]));
    }

    #[test]
    fn uneven_racks_still_give_each_partition_every_rack_it_can() {
        let brokers = [broker(1, Some("a")), broker(2, Some("a")), broker(3, Some("b")), broker(4, Some("c"))];
        let rack_of = |id: i32| brokers.iter().find(|b| b.node_id == id).unwrap().rack.clone();
        let order = placement_order(&brokers);
        for replicas in assign(&order, rack_of, 0, 8, 3, 0) {
            let mut racks: Vec<_> = replicas.iter().map(|id| rack_of(*id)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{replicas:?}");
            assert_eq!(replicas.len(), 3);
        }
        let leaders: std::collections::BTreeSet<i32> =
            assign(&order, rack_of, 0, 8, 3, 0).iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 4, "leaders rotate over every broker");
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
        for replicas in assign(&order, rack_of, 0, 12, 3, 0) {
            let mut racks: Vec<_> = replicas.iter().map(|id| rack_of(*id)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
        let mut leader_counts = BTreeMap::new();
        for replicas in assign(&order, rack_of, 0, 12, 3, 0) {
            *leader_counts.entry(replicas[0]).or_insert(0) += 1;
        }
        assert!(leader_counts.values().all(|c| *c == 2), "{leader_counts:?}");
    }
}

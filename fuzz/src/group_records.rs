//! `group_records`: records of a `__consumer_offsets` partition as the start-up replay reads
//! them (`crates/broker/src/groups/loader.rs`), through Kafka's key/value codec
//! (`groups::codec::decode`) into a shard (`ShardState::replay`), then what the coordinator
//! does with a loaded shard: `timers::on_loaded`, `reindex_all`, the timers
//! (`timers::tick`), offsets retention (`offsets::expire`), OffsetFetch, and the encoding of
//! every record those produce (`codec::encode`, as `ShardState::land` appends them).
//!
//! Input: records back to back, each `key_len: u16 | key | value_len: i32 (negative: null
//! value, a tombstone) | value`, both lengths big-endian; a truncated last record ends the
//! input. (In the log they are the keys and values of uncompressed batches; batch framing
//! is the `record_batch` target's business.)

use runnel_broker::groups::codec;
use runnel_broker::groups::record::Record;
use runnel_broker::groups::shard::ShardState;
use runnel_broker::groups::{offsets, timers, GroupConfig};

/// A fixed clock: runs must be deterministic.
const NOW_MS: i64 = 1_700_000_000_000;

/// Splits the input into (key, value) records; see the module doc.
pub fn records(mut data: &[u8]) -> Vec<(&[u8], Option<&[u8]>)> {
    let mut out = Vec::new();
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let key_len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < key_len {
            break;
        }
        let (key, rest) = rest.split_at(key_len);
        let Some((len, rest)) = rest.split_first_chunk::<4>() else { break };
        let value_len = i32::from_be_bytes(*len);
        let (value, rest) = match usize::try_from(value_len) {
            Err(_) => (None, rest),
            Ok(n) if n <= rest.len() => (Some(&rest[..n]), &rest[n..]),
            Ok(_) => break,
        };
        out.push((key, value));
        data = rest;
    }
    out
}

/// What `ShardState::land` does with an outcome's records: encode the persistent ones for
/// the append (they must decode back to themselves), then apply every record.
fn land(state: &mut ShardState, group_id: &str, records: &[Record]) {
    for record in records {
        if let Some((key, value)) = codec::encode(group_id, record) {
            let (decoded_id, decoded) = codec::decode(&key, value.as_deref()).expect("our own records decode");
            assert_eq!(decoded_id, group_id);
            assert_eq!(&decoded, record, "a persistent record survives its encoding");
        }
        state.replay(group_id, record);
    }
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let mut state = ShardState::default();
    // loader::replay_batch: undecodable records are skipped with a warning.
    for (key, value) in records(data) {
        if let Ok((group_id, record)) = codec::decode(key, value) {
            state.replay(&group_id, &record);
        }
    }
    // loader::replay: every loaded member gets a full session, then the timer index.
    let ids: Vec<String> = state.groups.keys().cloned().collect();
    for group_id in &ids {
        let outcome = timers::on_loaded(&state.groups[group_id], NOW_MS);
        for record in &outcome.records {
            state.replay(group_id, record);
        }
    }
    state.reindex_all();

    let config = GroupConfig::default();
    for group_id in &ids {
        let Some(group) = state.groups.get(group_id) else { continue };
        let _ = offsets::fetch(Some(group), None);
        let _ = (group.next_deadline_ms(), group.subscribed_topics(), group.select_protocol());
    }
    // The background task: due timers now and much later, then offsets retention.
    for now_ms in [NOW_MS, NOW_MS + 3_600_000, NOW_MS + 30 * 24 * 3_600_000] {
        for group_id in state.due(now_ms) {
            let Some(group) = state.groups.get(&group_id) else { continue };
            let outcome = timers::tick(group, &config, now_ms);
            land(&mut state, &group_id, &outcome.records);
        }
        let ids: Vec<String> = state.groups.keys().cloned().collect();
        for group_id in ids {
            let Some(group) = state.groups.get(&group_id) else { continue };
            let outcome = offsets::expire(group, &config, now_ms);
            land(&mut state, &group_id, &outcome.records);
        }
        state.reindex_all();
    }
}

//! What a failed fsync does: Kafka's storage-error behaviour.
//!
//! After `fsync` fails, the kernel may already have dropped the dirty pages it could not
//! write, and a later `fsync` can succeed without them ("fsyncgate"): the log's durable
//! state is unknown. Kafka then takes the log directory offline, and a broker whose last
//! log directory goes offline halts; the controller fences it and its partitions' leaders
//! move to in-sync replicas, which hold every acknowledged record. A Runnel node has one
//! data directory, so it does the same: it logs the failure and exits at once, without a
//! clean shutdown (whose flushes and checkpoints would record the unknown state as good).
//!
//! Answering the produce request with an error instead would be wrong the other way: the
//! records are in the log, and a producer without idempotence would write them again.

/// Process exit status after a storage failure.
pub const STORAGE_FAILURE_EXIT_CODE: i32 = 70;

/// Logs the failed fsync of `topic`-`partition` and halts the node.
pub fn fatal(topic: &str, partition: i32, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(
        topic,
        partition,
        error = %error,
        "fsync failed: the data directory's durable state is unknown; halting (Kafka's behaviour when its last log directory fails)"
    );
    eprintln!("runnel: fsync of {topic}-{partition} failed ({error}); halting");
    std::process::exit(STORAGE_FAILURE_EXIT_CODE)
}

//! A real S3-compatible server for tests (moto's, shared with the tiered crate's tests:
//! `runnel_tiered::testing`), and the node settings that use it.

// Not every test binary that includes `support` starts a server.
#[allow(unused_imports)]
pub use runnel_tiered::testing::S3Server;

/// The node settings that use `bucket` through `endpoint` (the server's address, or a
/// proxy's in front of it).
pub fn node_settings(endpoint: &str, bucket: &str) -> Vec<String> {
    [
        "remote.log.storage.system.enable=true".to_string(),
        "remote.log.storage.backend=s3".to_string(),
        format!("remote.log.storage.s3.endpoint=http://{endpoint}"),
        format!("remote.log.storage.s3.bucket={bucket}"),
        "remote.log.storage.s3.access.key.id=test".to_string(),
        "remote.log.storage.s3.secret.access.key=test".to_string(),
    ]
    .into_iter()
    .flat_map(|setting| ["--set".to_string(), setting])
    .collect()
}

//! The Runnel broker runtime.
//!
//! Owns: the Kafka listener and connections ([`server`], [`connection`]), the dispatch table
//! and one handler module per API ([`handlers`]), the partitions this node hosts
//! ([`replica_manager`], [`partition`]), the node's metadata store ([`metadata_store`]),
//! broker settings ([`config`], [`topic_config`]), consumer groups ([`groups`]) and the metrics
//! endpoint ([`metrics`]).
//! Storage, the protocol view and metadata records live in their own crates.

pub mod access;
pub mod authorizer;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_changes;
pub mod connection;
pub mod coordinator_runtime;
pub mod dynamic_config;
pub mod groups;
pub mod handlers;
pub mod inter_broker;
pub mod isr;
pub mod listeners;
pub mod liveness;
pub mod locks;
pub mod log_cleaner;
pub mod log_dirs;
pub mod metadata_store;
pub mod metrics;
pub mod metrics_state;
pub mod offline_replicas;
pub mod partition;
#[cfg(test)]
mod partition_tests;
pub mod partition_txn;
pub mod principal;
pub mod producer_ids;
pub mod publisher;
pub mod quotas;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replica_selector;
pub mod request_metrics;
pub mod response;
pub mod response_errors;
pub mod sasl;
pub mod sendfile;
pub mod server;
pub mod session;
pub mod storage_failure;
pub mod tier_state;
pub mod tiered_config;
pub mod tiering;
pub mod tls;
pub mod topic_admin;
pub mod topic_config;
pub mod transactions;

pub use broker::{Broker, BrokerError};
pub use config::{BrokerConfig, ConfigError};
pub use server::{run, run_until_signal, Bound};

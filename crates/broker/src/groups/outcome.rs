//! What a pure handler returns ([`Outcome`]) and the builder that lets it see its own
//! records while it decides ([`Tx`]).

use super::group::Group;
use super::join::JoinResponse;
use super::record::Record;
use super::sync::SyncResponse;

/// An answer for a member whose JoinGroup or SyncGroup is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parked {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// Which kind of request is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    Join,
    Sync,
}

/// The requester's answer: now, or later through a [`Parked`] answer addressed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<R> {
    Now(R),
    /// Park the request under this member id until a [`Parked`] answer of `kind` names it.
    Park {
        member_id: String,
        kind: WaitKind,
    },
}

#[derive(Debug)]
pub struct Outcome<R> {
    /// Records to append (the persistent ones) and then apply, in order.
    pub records: Vec<Record>,
    pub reply: Reply<R>,
    /// Answers for parked requests, delivered after the records are applied.
    pub wakeups: Vec<(String, Parked)>,
    /// The group as the handler expects it after applying `records`; the shell checks the
    /// real replay against it in debug builds.
    pub expected: Group,
}

/// A handler's work in progress: a scratch copy of the group that every emitted record is
/// applied to at once, so later decisions in the same request see earlier ones.
pub struct Tx {
    scratch: Group,
    records: Vec<Record>,
    wakeups: Vec<(String, Parked)>,
}

impl Tx {
    pub fn new(group: Option<&Group>, group_id: &str) -> Tx {
        let scratch = group.cloned().unwrap_or_else(|| Group::new(group_id));
        Tx { scratch, records: Vec::new(), wakeups: Vec::new() }
    }

    /// The group with every record emitted so far applied.
    pub fn group(&self) -> &Group {
        &self.scratch
    }

    pub fn emit(&mut self, record: Record) {
        self.scratch.apply(&record);
        self.records.push(record);
    }

    /// Answers `member_id`'s parked request (if it still has one when the records land).
    pub fn wake(&mut self, member_id: &str, answer: Parked) {
        self.wakeups.push((member_id.to_string(), answer));
    }

    pub fn finish<R>(self, reply: Reply<R>) -> Outcome<R> {
        Outcome { records: self.records, reply, wakeups: self.wakeups, expected: self.scratch }
    }

    pub fn now<R>(self, response: R) -> Outcome<R> {
        self.finish(Reply::Now(response))
    }
}

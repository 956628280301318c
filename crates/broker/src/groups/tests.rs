//! Unit tests of the pure group state machine.

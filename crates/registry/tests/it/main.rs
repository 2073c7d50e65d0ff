//! Integration tests of the registry client against real registries (Debian docker-registry,
//! distribution 2.8.2) started on loopback by the test harness.

mod auth;
mod copy;
mod faults;
mod rollout;
mod support;

//! Container registry client for caasctl, built on the registry HTTP API v2 with no Docker daemon.
//!
//! The runbook mirrors component images with `docker pull`, `docker tag` and `docker push` on the
//! registry host, then pulls them on each node by hand. This crate does the same work registry to
//! registry: [`copy`] copies an image with every platform and keeps its digests, [`sync`] runs many
//! copies from a list, and [`rollout`] pulls an image node by node and checks what each node got.
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod copy;
pub mod error;
pub mod manifest;
pub mod reference;
pub mod retry;
pub mod rollout;
pub mod sync;

pub use bytes::Bytes;
pub use client::{ClientOptions, RegistryClient, Registries};
pub use copy::{CopyOptions, CopyReport};
pub use error::RegistryError;
pub use reference::Reference;

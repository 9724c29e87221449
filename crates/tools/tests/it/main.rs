//! Integration tests for pincer-tools: real files in temp dirs, real processes, a real local
//! HTTP server. One binary to keep link times down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod exec;
mod fs;
mod hosts;
mod policy;
mod registry;
mod sandbox;
mod schema;
mod web;

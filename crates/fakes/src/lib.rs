//! Local fakes.
pub mod http;

//! Method handlers, one module per namespace. [`registry`] registers every implemented method;
//! `hello-ok.features.methods` is derived from it.

pub mod gateway;
pub mod logs;
pub mod system;

use crate::dispatch::MethodRegistry;

/// All methods Pincer implements.
pub fn registry() -> MethodRegistry {
    let mut reg = MethodRegistry::default();
    system::register(&mut reg);
    logs::register(&mut reg);
    gateway::register(&mut reg);
    reg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_method_is_in_the_core_table() {
        let reg = registry();
        for name in reg.names() {
            assert!(pincer_protocol::methods::lookup(name).is_some(), "{name}");
        }
        assert_eq!(
            reg.advertised(),
            vec![
                "health",
                "status",
                "system-presence",
                "system-event",
                "logs.tail",
                "gateway.identity.get"
            ]
        );
    }
}

//! Method handlers, one module per namespace. [`registry`] registers every implemented method;
//! `hello-ok.features.methods` is derived from it.

pub mod agent;
pub mod agents;
pub mod approvals;
pub mod channels;
pub mod chat;
pub mod chat_history;
pub mod config;
pub mod cron;
pub mod devices;
pub mod gateway;
pub mod heartbeat;
pub mod logs;
pub mod models;
pub mod node_invoke;
pub mod nodes;
pub mod send;
pub mod sessions;
pub mod system;
pub mod tools;

use crate::dispatch::MethodRegistry;

/// All methods Pincer implements.
pub fn registry() -> MethodRegistry {
    let mut reg = MethodRegistry::default();
    system::register(&mut reg);
    logs::register(&mut reg);
    gateway::register(&mut reg);
    devices::register(&mut reg);
    config::register(&mut reg);
    sessions::register(&mut reg);
    chat_history::register(&mut reg);
    agents::register(&mut reg);
    chat::register(&mut reg);
    agent::register(&mut reg);
    models::register(&mut reg);
    nodes::register(&mut reg);
    node_invoke::register(&mut reg);
    approvals::register(&mut reg);
    tools::register(&mut reg);
    cron::register(&mut reg);
    heartbeat::register(&mut reg);
    channels::register(&mut reg);
    send::register(&mut reg);
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
                "gateway.identity.get",
                "device.pair.list",
                "device.pair.approve",
                "device.pair.reject",
                "device.pair.remove",
                "device.pair.rename",
                "device.token.rotate",
                "device.token.revoke",
                "config.get",
                "config.set",
                "config.patch",
                "config.apply",
                "config.schema",
                "config.schema.lookup",
                "sessions.list",
                "sessions.subscribe",
                "sessions.messages.subscribe",
                "sessions.messages.unsubscribe",
                "sessions.preview",
                "sessions.describe",
                "sessions.patch",
                "sessions.create",
                "sessions.reset",
                "sessions.delete",
                "chat.history",
                "agents.list",
                "chat.send",
                "chat.abort",
                "agent",
                "agent.wait",
                "agent.identity.get",
                "sessions.compact",
                "models.list",
                "node.list",
                "node.describe",
                "node.rename",
                "node.pair.list",
                "node.pair.approve",
                "node.pair.reject",
                "node.pair.remove",
                "node.invoke",
                "node.invoke.result",
                "node.invoke.progress",
                "node.event",
                "exec.approval.request",
                "exec.approval.get",
                "exec.approval.list",
                "exec.approval.waitDecision",
                "exec.approval.resolve",
                "exec.approvals.get",
                "exec.approvals.set",
                "tools.catalog",
                "tools.effective",
                "cron.list",
                "cron.get",
                "cron.status",
                "cron.add",
                "cron.update",
                "cron.remove",
                "cron.run",
                "cron.runs",
                "cron.scratch.get",
                "cron.scratch.set",
                "last-heartbeat",
                "set-heartbeats",
                "wake",
                "channels.status",
                "channels.start",
                "channels.stop",
                "channels.logout",
                "channels.pairing.list",
                "channels.pairing.approve",
                "channels.pairing.dismiss",
                "send"
            ]
        );
    }
}

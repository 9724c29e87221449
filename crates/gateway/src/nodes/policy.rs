//! The platform allowlist of node commands and the approval scopes (spec §4.6, §3.3): pure
//! functions of the node's platform, its declared/approved commands and
//! `gateway.nodes.commands.allow/deny`.
//!
//! Two allowlists, as the reference: the *pairing* allowlist decides which declared commands
//! may enter a surface request at all (a command outside it is dropped and logged); the
//! *runtime* allowlist decides, per `node.invoke`, whether an approved command may run now.
//! On desktop platforms the host commands (`system.run`, …) are not in the runtime defaults:
//! they are allowed only once approved for that node.

use pincer_protocol::scopes;

/// Platform ids the allowlist knows.
pub const PLATFORM_IDS: [&str; 7] = [
    "ios", "watchos", "android", "macos", "windows", "linux", "unknown",
];

const CAMERA: &[&str] = &["camera.list"];
const MAC_CAMERA: &[&str] = &["camera.ptz.status"];
const LOCATION: &[&str] = &["location.get"];
const ANDROID_NOTIFICATIONS: &[&str] = &["notifications.list", "notifications.actions"];
const DEVICE: &[&str] = &["device.info", "device.status"];
const ANDROID_DEVICE: &[&str] = &[
    "device.info",
    "device.status",
    "device.permissions",
    "device.health",
    "device.apps",
];
const CONTACTS: &[&str] = &["contacts.search"];
const CALENDAR: &[&str] = &["calendar.events"];
const CALL_LOG: &[&str] = &["callLog.search"];
const REMINDERS: &[&str] = &["reminders.list"];
const PHOTOS: &[&str] = &["photos.latest"];
const MOTION: &[&str] = &["motion.activity", "motion.pedometer"];
const MOBILE_UI: &[&str] = &["mobile.ui.observe", "mobile.ui.act"];
const DESKTOP_SCREEN: &[&str] = &["screen.snapshot", "desktop.stream"];
const COMPUTER: &[&str] = &["computer.act"];
const SYSTEM_NOTIFY: &[&str] = &["system.notify"];
const DEVICE_APPS: &[&str] = &["device.apps"];
/// Host commands of desktop nodes (shell, exec approvals, files, browser proxy, MCP, agent CLI).
const SYSTEM: &[&str] = &[
    "system.run.prepare",
    "system.run",
    "system.which",
    "system.execApprovals.get",
    "system.execApprovals.set",
    "fs.listDir",
    "terminal.upload",
    "system.notify",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "mcp.tools.call.v1",
    "agent.cli.claude.run.v1",
];
/// Desktop commands that are not runtime defaults: allowed once approved for the node.
const DESKTOP_HOST: &[&str] = &[
    "system.run.prepare",
    "system.run",
    "system.which",
    "system.execApprovals.get",
    "system.execApprovals.set",
    "fs.listDir",
    "terminal.upload",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "mcp.tools.call.v1",
    "agent.cli.claude.run.v1",
    "screen.snapshot",
    "desktop.stream",
];
/// Never allowed by default on any platform; only an explicit `gateway.nodes.commands.allow`.
pub const DANGEROUS: &[&str] = &[
    "camera.snap",
    "camera.clip",
    "camera.ptz.control",
    "screen.record",
    "contacts.add",
    "calendar.add",
    "reminders.add",
    "sms.send",
    "sms.search",
    "health.summary",
];
const TALK_PTT: &[&str] = &[
    "talk.ptt.start",
    "talk.ptt.stop",
    "talk.ptt.cancel",
    "talk.ptt.once",
];
const WATCH_RELAY: &[&str] = &["watch.status", "watch.notify"];
/// Worker controls: never declarable, never invocable through `node.invoke`.
pub const PRIVATE: &[&str] = &[
    "worker.bundle.install.v1",
    "worker.launch.v1",
    "worker.status.v1",
    "worker.cancel.v1",
    "worker.environment.stop.v1",
    "worker.workspace.exec.v1",
    "worker.workspace.prepare.v1",
    "worker.workspace.retain.v1",
    "worker.desktop.stream.v1",
    "worker.desktop.launch.v1",
    "worker.desktop.computer.v1",
    "worker.portal.stream.v1",
];
/// `node.invoke` of these needs `operator.admin` whatever the method table says.
pub const ADMIN_ONLY_INVOKE: &[&str] = &[
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "terminal.upload",
];
/// Approving a surface with any of these needs `operator.admin`.
const ADMIN_APPROVAL: &[&str] = &[
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "terminal.upload",
    "system.run.prepare",
    "system.run",
    "system.which",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

fn defaults(platform_id: &str) -> Vec<&'static [&'static str]> {
    match platform_id {
        "ios" => vec![
            CAMERA,
            LOCATION,
            DEVICE,
            CONTACTS,
            CALENDAR,
            REMINDERS,
            PHOTOS,
            MOTION,
            SYSTEM_NOTIFY,
        ],
        "watchos" => vec![DEVICE, SYSTEM_NOTIFY],
        "android" => vec![
            CAMERA,
            LOCATION,
            ANDROID_NOTIFICATIONS,
            SYSTEM_NOTIFY,
            ANDROID_DEVICE,
            CONTACTS,
            CALENDAR,
            CALL_LOG,
            REMINDERS,
            PHOTOS,
            MOTION,
            MOBILE_UI,
        ],
        "macos" => vec![
            CAMERA,
            MAC_CAMERA,
            LOCATION,
            DEVICE,
            DEVICE_APPS,
            CONTACTS,
            CALENDAR,
            REMINDERS,
            PHOTOS,
            MOTION,
            SYSTEM,
            DESKTOP_SCREEN,
            COMPUTER,
        ],
        "linux" => vec![SYSTEM, DESKTOP_SCREEN, COMPUTER],
        "windows" => vec![CAMERA, LOCATION, DEVICE, SYSTEM, DESKTOP_SCREEN, COMPUTER],
        _ => vec![CAMERA, LOCATION, SYSTEM_NOTIFY],
    }
}

fn is_desktop(platform_id: &str) -> bool {
    matches!(platform_id, "macos" | "windows" | "linux")
}

fn norm(value: Option<&str>) -> String {
    value.map(|v| v.trim().to_lowercase()).unwrap_or_default()
}

/// `<name> <major>[.<minor>[.<patch>]]` (native app platform labels such as `iOS 17.2`).
fn versioned_label<'a>(value: &'a str, names: &[&str]) -> Option<&'a str> {
    let (name, version) = value.split_once(' ')?;
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = !parts.is_empty()
        && parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (numeric && names.contains(&name)).then_some(name)
}

/// The platform id for the allowlist: an exact platform must agree with the device family
/// (`linux` + `Linux`); native labels (`iOS 17.2` + `iPhone`) map by family; anything else is
/// `unknown`, which gets a conservative default (no `system.*` host commands).
pub fn platform_id(platform: Option<&str>, device_family: Option<&str>) -> &'static str {
    let raw = norm(platform);
    let family = norm(device_family);
    let family_matches = |id: &str| match id {
        "ios" => family.is_empty() || matches!(family.as_str(), "iphone" | "ipad" | "ios"),
        "watchos" => matches!(family.as_str(), "apple watch" | "watchos"),
        "android" => family.is_empty() || family == "android",
        "macos" => family == "mac",
        "windows" => family == "windows",
        "linux" => family == "linux",
        _ => false,
    };
    if let Some(id) = PLATFORM_IDS[..6].iter().find(|id| **id == raw) {
        return if family_matches(id) { id } else { "unknown" };
    }
    let native = if versioned_label(&raw, &["ios", "ipados"]).is_some() {
        matches!(family.as_str(), "iphone" | "ipad" | "ios").then_some("ios")
    } else if versioned_label(&raw, &["watchos"]).is_some() {
        matches!(family.as_str(), "apple watch" | "watchos").then_some("watchos")
    } else if versioned_label(&raw, &["macos"]).is_some() {
        (family == "mac").then_some("macos")
    } else if raw.starts_with("android ") {
        (family == "android").then_some("android")
    } else {
        None
    };
    if let Some(id) = native {
        return id;
    }
    if !raw.is_empty() {
        return "unknown";
    }
    const FAMILY_TOKENS: [(&str, &[&str]); 6] = [
        ("ios", &["iphone", "ipad", "ios"]),
        ("watchos", &["apple watch", "watchos"]),
        ("android", &["android"]),
        ("macos", &["mac"]),
        ("windows", &["windows"]),
        ("linux", &["linux"]),
    ];
    FAMILY_TOKENS
        .iter()
        .find(|(_, tokens)| tokens.iter().any(|t| family.contains(t)))
        .map_or("unknown", |(id, _)| id)
}

/// What a node is (for the allowlist).
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts<'a> {
    pub platform_id: &'a str,
    /// Normalised device family (for the iPhone watch relay).
    pub device_family: Option<&'a str>,
    pub caps: &'a [String],
    /// Commands approved for this node (or the live session's effective commands).
    pub approved: &'a [String],
}

/// `gateway.nodes.commands` from the config in force.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandConfig<'a> {
    pub allow: &'a [String],
    pub deny: &'a [String],
}

fn has_talk_surface(facts: &NodeFacts<'_>) -> bool {
    facts.caps.iter().any(|c| c.eq_ignore_ascii_case("talk"))
        || facts
            .approved
            .iter()
            .any(|c| c.to_lowercase().starts_with("talk."))
}

/// The allowlist. `pairing` = the declaration gate (desktop host commands admitted, dangerous
/// defaults exempt from `deny`); otherwise the runtime gate.
pub fn allowlist(facts: &NodeFacts<'_>, cfg: &CommandConfig<'_>, pairing: bool) -> Vec<String> {
    let desktop = is_desktop(facts.platform_id);
    let mut allow: Vec<String> = Vec::new();
    let add = |c: &str, allow: &mut Vec<String>| {
        let c = c.trim();
        if !c.is_empty() && !allow.iter().any(|a| a == c) {
            allow.push(c.to_string());
        }
    };
    for list in defaults(facts.platform_id) {
        for c in list {
            if pairing || !desktop || !DESKTOP_HOST.contains(c) {
                add(c, &mut allow);
            }
        }
    }
    if facts.platform_id == "ios" && norm(facts.device_family) == "iphone" {
        WATCH_RELAY.iter().for_each(|c| add(c, &mut allow));
    }
    if has_talk_surface(facts) {
        TALK_PTT.iter().for_each(|c| add(c, &mut allow));
    }
    if desktop {
        for c in facts.approved {
            if DESKTOP_HOST.contains(&c.trim()) {
                add(c, &mut allow);
            }
        }
    }
    for c in cfg.allow {
        add(c, &mut allow);
    }
    // Dangerous commands only by explicit opt-in.
    if !pairing {
        allow.retain(|c| {
            !DANGEROUS.contains(&c.as_str()) || cfg.allow.iter().any(|a| a.trim() == c)
        });
    }
    for d in cfg.deny {
        let d = d.trim();
        if pairing && DANGEROUS.contains(&d) {
            continue;
        }
        allow.retain(|c| c != d);
    }
    allow.retain(|c| !PRIVATE.contains(&c.as_str()));
    allow
}

/// Trim, drop empties, duplicates and private commands; keep declared order.
pub fn normalize_list(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in list {
        let c = c.trim();
        if !c.is_empty() && !PRIVATE.contains(&c) && !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    out
}

/// Capability → the commands that fulfil it (a capability whose commands were all withheld is
/// dropped with them).
fn capability_family(cap: &str) -> Option<&'static [&'static str]> {
    Some(match cap {
        "camera" => &[
            "camera.list",
            "camera.ptz.status",
            "camera.snap",
            "camera.clip",
            "camera.ptz.control",
        ],
        "computer" => &["computer.act"],
        "location" => &["location.get"],
        "screen" => &["screen.snapshot", "desktop.stream", "screen.record"],
        _ => return None,
    })
}

/// A node's declared surface after the pairing allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declared {
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    /// Declared commands dropped because the platform allowlist does not admit them.
    pub withheld: Vec<String>,
}

/// Filter what a node declared at connect through the pairing allowlist.
pub fn declared_surface(
    caps: &[String],
    commands: &[String],
    platform_id: &str,
    device_family: Option<&str>,
    cfg: &CommandConfig<'_>,
) -> Declared {
    let caps = normalize_list(caps);
    let commands = normalize_list(commands);
    let facts = NodeFacts {
        platform_id,
        device_family,
        caps: &caps,
        approved: &commands,
    };
    let allow = allowlist(&facts, cfg, true);
    let (admitted, withheld): (Vec<String>, Vec<String>) =
        commands.into_iter().partition(|c| allow.contains(c));
    let caps = caps
        .into_iter()
        .filter(|cap| match capability_family(cap) {
            None => true,
            Some(family) => {
                !withheld.iter().any(|c| family.contains(&c.as_str()))
                    || admitted.iter().any(|c| family.contains(&c.as_str()))
            }
        })
        .collect();
    Declared {
        caps,
        commands: admitted,
        withheld,
    }
}

/// Why a command may not be invoked (`details.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CommandRequired,
    NotAllowlisted,
    NotDeclared,
    NoCommands,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::CommandRequired => "command required",
            Refusal::NotAllowlisted => "command not allowlisted",
            Refusal::NotDeclared => "command not declared by node",
            Refusal::NoCommands => "node did not declare commands",
        }
    }
}

/// Runtime gate: `command` must be in the runtime allowlist and among the node's effective
/// (approved and declared) commands.
pub fn check_invoke(
    command: &str,
    facts: &NodeFacts<'_>,
    cfg: &CommandConfig<'_>,
) -> Result<(), Refusal> {
    let command = command.trim();
    if command.is_empty() {
        return Err(Refusal::CommandRequired);
    }
    if PRIVATE.contains(&command) || !allowlist(facts, cfg, false).iter().any(|c| c == command) {
        return Err(Refusal::NotAllowlisted);
    }
    if facts.approved.is_empty() {
        return Err(Refusal::NoCommands);
    }
    if !facts.approved.iter().any(|c| c == command) {
        return Err(Refusal::NotDeclared);
    }
    Ok(())
}

/// The error message for a refused invoke (the reference's hints; CLI names are Pincer's).
pub fn refusal_message(
    refusal: Refusal,
    command: &str,
    platform: &str,
    pending_declared: &[String],
    cfg: &CommandConfig<'_>,
) -> String {
    match refusal {
        Refusal::NotDeclared => format!(
            "node command not allowed: the node (platform: {platform}) does not support \"{command}\""
        ),
        Refusal::NotAllowlisted if command.starts_with("talk.") => format!(
            "node command not allowed: \"{command}\" requires a trusted Talk-capable node"
        ),
        Refusal::NotAllowlisted if cfg.deny.iter().any(|d| d.trim() == command) => format!(
            "node command not allowed: \"{command}\" is blocked by gateway.nodes.commands.deny"
        ),
        Refusal::NotAllowlisted if DANGEROUS.contains(&command) => format!(
            "node command not allowed: \"{command}\" requires explicit gateway.nodes.commands.allow opt-in"
        ),
        Refusal::NotAllowlisted => format!(
            "node command not allowed: \"{command}\" is not in the allowlist for platform \"{platform}\""
        ),
        Refusal::NoCommands if pending_declared.iter().any(|c| c == command) => {
            "node command not allowed: the node's declared command surface is pending approval; \
             run `pincer nodes pending`, then `pincer nodes approve <requestId>`"
                .to_string()
        }
        Refusal::NoCommands => {
            "node command not allowed: the node did not declare any supported commands".to_string()
        }
        Refusal::CommandRequired => "node command not allowed: command required".to_string(),
    }
}

/// The least operator scopes that may approve a surface with `commands`.
pub fn required_approve_scopes(commands: &[String]) -> Vec<&'static str> {
    if commands
        .iter()
        .any(|c| ADMIN_APPROVAL.contains(&c.as_str()))
    {
        vec![scopes::PAIRING, scopes::ADMIN]
    } else if !commands.is_empty() {
        vec![scopes::PAIRING, scopes::WRITE]
    } else {
        vec![scopes::PAIRING]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn platform_ids() {
        assert_eq!(platform_id(Some("linux"), Some("Linux")), "linux");
        assert_eq!(platform_id(Some("linux"), None), "unknown");
        assert_eq!(platform_id(Some("macos"), Some("Mac")), "macos");
        assert_eq!(platform_id(Some("iOS 17.2"), Some("iPhone")), "ios");
        assert_eq!(platform_id(Some("ios"), None), "ios");
        assert_eq!(
            platform_id(Some("Android 14 (SDK 34)"), Some("Android")),
            "android"
        );
        assert_eq!(platform_id(None, Some("Linux desktop")), "linux");
        assert_eq!(platform_id(Some("plan9"), Some("Linux")), "unknown");
    }

    #[test]
    fn golden_linux_surface_drops_unknown_commands() {
        // node_invoke.jsonl: declared system.which, system.run, anchor.custom on linux.
        let d = declared_surface(
            &s(&["system"]),
            &s(&["system.which", "system.run", "anchor.custom"]),
            "linux",
            Some("Linux"),
            &CommandConfig::default(),
        );
        assert_eq!(d.commands, s(&["system.which", "system.run"]));
        assert_eq!(d.withheld, s(&["anchor.custom"]));
        assert_eq!(d.caps, s(&["system"]));
        assert_eq!(
            required_approve_scopes(&d.commands),
            vec!["operator.pairing", "operator.admin"]
        );
    }

    #[test]
    fn runtime_gate() {
        let cfg = CommandConfig::default();
        let approved = s(&["system.run", "system.which"]);
        let facts = NodeFacts {
            platform_id: "linux",
            device_family: Some("Linux"),
            caps: &[],
            approved: &approved,
        };
        assert_eq!(check_invoke("system.which", &facts, &cfg), Ok(()));
        assert_eq!(
            check_invoke("anchor.custom", &facts, &cfg),
            Err(Refusal::NotAllowlisted)
        );
        assert_eq!(
            refusal_message(Refusal::NotAllowlisted, "anchor.custom", "linux", &[], &cfg),
            "node command not allowed: \"anchor.custom\" is not in the allowlist for platform \"linux\""
        );
        // system.notify is a linux default but this node did not declare it.
        assert_eq!(
            check_invoke("system.notify", &facts, &cfg),
            Err(Refusal::NotDeclared)
        );
        // Desktop host commands need approval: an unapproved node cannot run system.run.
        let none: Vec<String> = vec![];
        let pending = NodeFacts {
            approved: &none,
            ..facts
        };
        assert_eq!(
            check_invoke("system.run", &pending, &cfg),
            Err(Refusal::NotAllowlisted)
        );
        assert_eq!(
            check_invoke("system.notify", &pending, &cfg),
            Err(Refusal::NoCommands)
        );
    }

    #[test]
    fn config_allow_and_deny() {
        let allow = s(&["anchor.custom", "camera.snap"]);
        let deny = s(&["system.which", "camera.snap"]);
        let cfg = CommandConfig {
            allow: &allow,
            deny: &deny,
        };
        let d = declared_surface(
            &[],
            &s(&["system.which", "anchor.custom", "camera.snap"]),
            "linux",
            Some("Linux"),
            &cfg,
        );
        // deny wins over the defaults; dangerous defaults stay declarable (blocked at runtime).
        assert_eq!(d.commands, s(&["anchor.custom", "camera.snap"]));
        let facts = NodeFacts {
            platform_id: "linux",
            device_family: Some("Linux"),
            caps: &[],
            approved: &d.commands,
        };
        assert_eq!(
            check_invoke("camera.snap", &facts, &cfg),
            Err(Refusal::NotAllowlisted)
        );
        assert!(
            refusal_message(Refusal::NotAllowlisted, "camera.snap", "linux", &[], &cfg)
                .contains("gateway.nodes.commands.deny")
        );
        assert_eq!(check_invoke("anchor.custom", &facts, &cfg), Ok(()));
    }

    #[test]
    fn private_commands_never_pass() {
        let allow = s(&["worker.launch.v1"]);
        let cfg = CommandConfig {
            allow: &allow,
            deny: &[],
        };
        let d = declared_surface(&[], &s(&["worker.launch.v1"]), "linux", Some("Linux"), &cfg);
        assert!(d.commands.is_empty());
    }

    #[test]
    fn withheld_camera_commands_drop_the_camera_capability() {
        let d = declared_surface(
            &s(&["camera", "system"]),
            &s(&["camera.snap"]),
            "linux",
            Some("Linux"),
            &CommandConfig::default(),
        );
        assert_eq!(d.caps, s(&["system"]));
    }
}

use std::collections::BTreeMap;

use pincer_tools::policy::{
    resolve_effective_tools, tool_catalog, PolicyRequest, ProviderToolPolicy, ToolPolicy,
    ToolProfile, ToolsPolicyConfig, CORE_TOOLS,
};

fn run(
    global: &ToolsPolicyConfig,
    agent: Option<&ToolsPolicyConfig>,
    req: &PolicyRequest<'_>,
) -> Vec<String> {
    resolve_effective_tools(
        CORE_TOOLS.iter().copied().chain(["slack_send"]),
        global,
        agent,
        req,
    )
    .tools
}

fn set(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn profile(p: ToolProfile) -> ToolsPolicyConfig {
    ToolsPolicyConfig {
        profile: Some(p),
        ..ToolsPolicyConfig::default()
    }
}

#[test]
fn profiles() {
    let req = PolicyRequest::default();
    assert_eq!(
        sorted(run(&profile(ToolProfile::Minimal), None, &req)),
        set(&["gateway", "session_status"])
    );
    let all = run(&ToolsPolicyConfig::default(), None, &req);
    assert_eq!(
        all.len(),
        CORE_TOOLS.len() + 1,
        "unset profile = unfiltered"
    );
    assert_eq!(
        run(&profile(ToolProfile::Full), None, &req).len(),
        all.len()
    );
    let coding = run(&profile(ToolProfile::Coding), None, &req);
    for t in [
        "read",
        "write",
        "edit",
        "apply_patch",
        "exec",
        "process",
        "web_fetch",
        "sessions_list",
        "memory_search",
        "automations",
    ] {
        assert!(coding.contains(&t.to_owned()), "coding has {t}");
    }
    for t in ["message", "nodes", "browser", "canvas", "slack_send"] {
        assert!(!coding.contains(&t.to_owned()), "coding lacks {t}");
    }
    let messaging = run(&profile(ToolProfile::Messaging), None, &req);
    assert!(messaging.contains(&"message".to_owned()));
    assert!(messaging.contains(&"sessions_send".to_owned()));
    assert!(!messaging.contains(&"exec".to_owned()));
    assert!(!messaging.contains(&"read".to_owned()));
}

#[test]
fn allow_also_allow_deny_and_groups() {
    let req = PolicyRequest::default();
    // alsoAllow widens the profile.
    let mut g = profile(ToolProfile::Minimal);
    g.policy.also_allow = Some(vec!["group:fs".into(), "WEB_*".into()]);
    assert_eq!(
        sorted(run(&g, None, &req)),
        set(&[
            "apply_patch",
            "edit",
            "gateway",
            "read",
            "session_status",
            "web_fetch",
            "web_search",
            "write"
        ])
    );
    // allow keeps only matches; deny wins; case-insensitive; bash alias.
    let g = ToolsPolicyConfig {
        policy: ToolPolicy::allow(&["group:runtime", "READ", "write"]).with_deny(&["Bash"]),
        ..ToolsPolicyConfig::default()
    };
    // allow:["write"] also allows apply_patch.
    assert_eq!(
        sorted(run(&g, None, &req)),
        set(&["apply_patch", "code_execution", "process", "read", "write"])
    );
    // deny:["write"] does not deny apply_patch.
    let g = ToolsPolicyConfig {
        policy: ToolPolicy::deny(&["write"]),
        ..ToolsPolicyConfig::default()
    };
    let tools = run(&g, None, &req);
    assert!(!tools.contains(&"write".to_owned()) && tools.contains(&"apply_patch".to_owned()));
    // group:openclaw excludes the fs/runtime primitives and canvas; group:plugins = non-core.
    let g = ToolsPolicyConfig {
        policy: ToolPolicy::allow(&["group:openclaw", "group:plugins"]),
        ..ToolsPolicyConfig::default()
    };
    let tools = run(&g, None, &req);
    for t in [
        "read",
        "write",
        "edit",
        "apply_patch",
        "exec",
        "process",
        "canvas",
    ] {
        assert!(!tools.contains(&t.to_owned()), "{t}");
    }
    assert!(tools.contains(&"message".to_owned()) && tools.contains(&"slack_send".to_owned()));
    // `*` wildcard deny of everything.
    let g = ToolsPolicyConfig {
        policy: ToolPolicy::deny(&["*"]),
        ..ToolsPolicyConfig::default()
    };
    assert!(run(&g, None, &req).is_empty());
}

#[test]
fn layer_precedence_agent_provider_sender_session() {
    let mut by_provider = BTreeMap::new();
    by_provider.insert(
        "openai/gpt-x".to_owned(),
        ProviderToolPolicy {
            profile: None,
            policy: ToolPolicy::deny(&["exec"]),
        },
    );
    by_provider.insert(
        "anthropic".to_owned(),
        ProviderToolPolicy {
            profile: Some(ToolProfile::Minimal),
            policy: ToolPolicy::default(),
        },
    );
    let global = ToolsPolicyConfig {
        profile: Some(ToolProfile::Coding),
        by_provider,
        ..ToolsPolicyConfig::default()
    };
    let agent = ToolsPolicyConfig {
        profile: Some(ToolProfile::Messaging),
        policy: ToolPolicy::deny(&["sessions_spawn"]),
        ..ToolsPolicyConfig::default()
    };
    let base = PolicyRequest {
        agent_id: Some("support"),
        ..PolicyRequest::default()
    };
    // Agent profile overrides the global one; agent deny applies.
    let tools = run(&global, Some(&agent), &base);
    assert!(tools.contains(&"message".to_owned()) && !tools.contains(&"exec".to_owned()));
    assert!(!tools.contains(&"sessions_spawn".to_owned()));
    // Provider/model policy: exact provider/model key.
    let req = PolicyRequest {
        provider: Some("openai"),
        model: Some("gpt-x"),
        ..PolicyRequest::default()
    };
    let tools = run(&global, None, &req);
    assert!(tools.contains(&"read".to_owned()) && !tools.contains(&"exec".to_owned()));
    // Provider profile narrows further.
    let req = PolicyRequest {
        provider: Some("anthropic"),
        model: Some("claude"),
        ..PolicyRequest::default()
    };
    assert_eq!(
        sorted(run(&global, None, &req)),
        set(&["gateway", "session_status"])
    );
    // A later layer cannot grant back what an earlier one removed.
    let session = ToolPolicy::allow(&["exec", "read"]);
    let req = PolicyRequest {
        provider: Some("openai"),
        model: Some("gpt-x"),
        session: Some(&session),
        ..PolicyRequest::default()
    };
    assert_eq!(run(&global, None, &req), vec!["read".to_owned()]);
    // Sender and session deny.
    let sender = ToolPolicy::deny(&["group:fs"]);
    let req = PolicyRequest {
        sender: Some(&sender),
        ..PolicyRequest::default()
    };
    let tools = run(&global, None, &req);
    assert!(!tools.contains(&"read".to_owned()) && tools.contains(&"exec".to_owned()));
    let r = resolve_effective_tools(["read", "exec"], &global, None, &req);
    assert_eq!(r.removed[0].layer, "tools.toolsBySender.deny");
    assert!(!r.allows("read") && r.allows("exec") && r.allows("BASH"));
}

#[test]
fn sandbox_gate_defaults_and_overrides() {
    let global = ToolsPolicyConfig::default();
    let req = PolicyRequest {
        sandboxed: true,
        ..PolicyRequest::default()
    };
    let tools = run(&global, None, &req);
    for t in [
        "exec",
        "process",
        "read",
        "write",
        "edit",
        "apply_patch",
        "sessions_list",
        "session_status",
    ] {
        assert!(tools.contains(&t.to_owned()), "{t}");
    }
    for t in [
        "web_fetch",
        "memory_search",
        "nodes",
        "browser",
        "message",
        "gateway",
    ] {
        assert!(!tools.contains(&t.to_owned()), "{t}");
    }
    // alsoAllow adds to the default sandbox allowlist and lifts a default deny.
    let global = ToolsPolicyConfig {
        sandbox_tools: Some(ToolPolicy::default().with_also_allow(&[
            "web_fetch",
            "memory_search",
            "nodes",
        ])),
        ..ToolsPolicyConfig::default()
    };
    let tools = run(&global, None, &req);
    assert!(tools.contains(&"web_fetch".to_owned()) && tools.contains(&"nodes".to_owned()));
    // Agent sandbox config replaces the global one list by list: its allow replaces the default
    // allowlist while the global alsoAllow still applies…
    let agent = ToolsPolicyConfig {
        sandbox_tools: Some(ToolPolicy::allow(&["read"])),
        ..ToolsPolicyConfig::default()
    };
    assert_eq!(
        sorted(run(&global, Some(&agent), &req)),
        set(&["memory_search", "nodes", "read", "web_fetch"])
    );
    // …unless the agent sets its own alsoAllow.
    let agent = ToolsPolicyConfig {
        sandbox_tools: Some(ToolPolicy::allow(&["read"]).with_also_allow(&[])),
        ..ToolsPolicyConfig::default()
    };
    assert_eq!(run(&global, Some(&agent), &req), vec!["read".to_owned()]);
    // Not sandboxed: gate ignored.
    assert!(run(&global, Some(&agent), &PolicyRequest::default()).len() > 10);
}

#[test]
fn catalog_lists_groups_and_profiles() {
    let cat = tool_catalog([
        ("read", "Read a file"),
        ("message", "Send"),
        ("slack_send", "plugin"),
    ]);
    assert_eq!(cat[0].groups, vec!["group:fs"]);
    assert_eq!(cat[0].profiles, vec!["coding", "full"]);
    assert_eq!(cat[0].source, "core");
    assert!(
        cat[1].groups.contains(&"group:messaging") && cat[1].groups.contains(&"group:openclaw")
    );
    assert_eq!(cat[1].profiles, vec!["messaging", "full"]);
    assert_eq!(cat[2].source, "plugin");
    assert_eq!(cat[2].groups, vec!["group:plugins"]);
}

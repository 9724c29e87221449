#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Loading, validation messages, includes, env, SecretRefs, schema, edits and reload.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use pincer_config::model::agents::ModelSelection;
use pincer_config::model::gateway::{AuthMode, BindMode};
use pincer_config::model::{SecretInput, SecretSource};
use pincer_config::reload::{ConfigWatcher, ReloadEvent};
use pincer_config::secrets::{self, SecretContext};
use pincer_config::{edit, json_schema, load, ConfigError, LoadOptions, WarningKind};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn opts() -> LoadOptions {
    LoadOptions::with_vars([
        ("TG_TOKEN".to_string(), "123:abc".to_string()),
        ("PORT_TEXT".to_string(), "19000".to_string()),
        ("WS".to_string(), "/srv/ws".to_string()),
    ])
}

fn error_of(text: &str) -> (PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "pincer.json", text);
    let err = load(&path, &opts()).unwrap_err();
    (path, err.to_string())
}

// ---- one test per error class, exact messages ---------------------------------------

#[test]
fn error_unknown_key_with_suggestion() {
    let (path, msg) = error_of("{\n  gateway: {\n    prot: 18789,\n  },\n}\n");
    assert_eq!(
        msg,
        format!("invalid configuration: {}:3:5 — gateway.prot: unknown key \"prot\" (did you mean \"port\"?)", path.display())
    );
}

#[test]
fn error_unknown_key_without_suggestion() {
    let (path, msg) = error_of("{ gateway: { zzzzzzzz: 1 } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:14 — gateway.zzzzzzzz: unknown key \"zzzzzzzz\"",
            path.display()
        )
    );
}

#[test]
fn error_wrong_type() {
    let (path, msg) = error_of("{\n  gateway: { port: \"18789\" },\n}");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:2:20 — gateway.port: expected integer, got string",
            path.display()
        )
    );
}

#[test]
fn error_bad_enum_value_lists_allowed_values() {
    let (path, msg) = error_of("{ gateway: { bind: \"lna\" } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:20 — gateway.bind: invalid value \"lna\"; allowed values: \"auto\", \"lan\", \"loopback\", \"custom\", \"tailnet\" (did you mean \"lan\"?)",
            path.display()
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "pincer.json",
        "{ session: { dmScope: 'per-user' } }",
    );
    match load(&p, &opts()).unwrap_err() {
        ConfigError::Invalid { issues } => {
            assert_eq!(issues.len(), 1);
            assert_eq!(issues[0].path, "session.dmScope");
            assert_eq!(
                issues[0].allowed_values.as_deref(),
                Some(
                    &[
                        "main".to_string(),
                        "per-peer".into(),
                        "per-channel-peer".into(),
                        "per-account-channel-peer".into()
                    ][..]
                )
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn error_out_of_range_number() {
    let (path, msg) = error_of("{ gateway: { port: 70000 } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:20 — gateway.port: must be at most 65535",
            path.display()
        )
    );
    let (path, msg) = error_of("{ session: { reset: { atHour: 24 } } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:31 — session.reset.atHour: must be at most 23",
            path.display()
        )
    );
}

#[test]
fn error_union_type_mismatch() {
    let (path, msg) = error_of("{ agents: { defaults: { model: 42 } } }");
    assert_eq!(msg, format!("invalid configuration: {}:1:32 — agents.defaults.model: expected string or object, got integer", path.display()));
}

#[test]
fn error_missing_required_key() {
    let (path, msg) = error_of("{ bindings: [ { match: { channel: 'telegram' } } ] }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:15 — bindings[0]: missing required key \"agentId\"",
            path.display()
        )
    );
}

#[test]
fn error_in_nested_secret_ref() {
    let (path, msg) = error_of("{ gateway: { auth: { token: { source: 'vault', id: 'x' } } } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:39 — gateway.auth.token.source: invalid value \"vault\"; allowed values: \"env\", \"file\", \"exec\", \"store\"",
            path.display()
        )
    );
}

#[test]
fn error_several_issues_are_all_reported() {
    let (path, msg) =
        error_of("{\n  gateway: { port: 'x', bind: 'nowhere' },\n  session: { scope: 1 },\n}");
    let p = path.display();
    assert_eq!(
        msg,
        format!(
            "invalid configuration (3 problems):\n  {p}:2:20 — gateway.port: expected integer, got string\n  {p}:2:31 — gateway.bind: invalid value \"nowhere\"; allowed values: \"auto\", \"lan\", \"loopback\", \"custom\", \"tailnet\"\n  {p}:3:21 — session.scope: expected string, got integer"
        )
    );
}

#[test]
fn error_syntax() {
    let (path, msg) = error_of("{\n  gateway: { port: 1 }\n  agents: {}\n}");
    assert_eq!(
        msg,
        format!(
            "{}:3:3 — syntax error: unexpected character 'a', expected ',' or '}}'",
            path.display()
        )
    );
}

#[test]
fn error_top_level_not_object() {
    let (_, msg) = error_of("[1, 2]");
    assert_eq!(msg, "the config must be a JSON object at the top level");
}

#[test]
fn error_file_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("{{ \"$schema\": \"{}\" }}", "x".repeat(2 * 1024 * 1024));
    let path = write(dir.path(), "pincer.json", &big);
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{} is ", path.display())), "{msg}");
    assert!(
        msg.ends_with("bytes, over the 2097152-byte limit for config files"),
        "{msg}"
    );
}

// ---- includes ------------------------------------------------------------------------

#[test]
fn include_single_and_array_deep_merge_with_sibling_override() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gw.json5",
        "{ port: 19001, bind: 'lan', auth: { mode: 'token', token: 't1' } }",
    );
    write(
        dir.path(),
        "parts/a.json5",
        "{ dmScope: 'per-peer', reset: { mode: 'daily' } }",
    );
    write(
        dir.path(),
        "parts/b.json5",
        "{ reset: { atHour: 6 }, $include: './c.json5' }",
    );
    write(dir.path(), "parts/c.json5", "{ groupScope: 'main' }");
    let path = write(
        dir.path(),
        "pincer.json",
        "{ gateway: { $include: './gw.json5', bind: 'loopback' }, session: { $include: ['./parts/a.json5', './parts/b.json5'] } }",
    );
    let loaded = load(&path, &opts()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.gateway.port(), 19001);
    assert_eq!(
        c.gateway.bind(),
        BindMode::Loopback,
        "sibling keys override included ones"
    );
    assert_eq!(c.gateway.auth.mode, Some(AuthMode::Token));
    let policy = c
        .session
        .reset_policy(None, pincer_config::model::session::ResetTarget::Direct);
    assert_eq!(policy.mode, pincer_sessions::ResetMode::Daily);
    assert_eq!(policy.at_hour, 6);
    assert_eq!(c.session.group_scope(), pincer_sessions::GroupScope::Main);
    assert_eq!(loaded.included_paths.len(), 4);
}

#[test]
fn include_errors_name_file_line_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "x.json5", "{}");
    let path = write(
        dir.path(),
        "pincer.json",
        &format!(
            "{{\n  gateway: {{ $include: {:?} }},\n}}",
            secret.display().to_string()
        ),
    );
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:2:24 — gateway: included file ",
            path.display()
        )) && msg.contains("is outside the config directory"),
        "{msg}"
    );

    let path = write(
        dir.path(),
        "pincer.json",
        "{ session: { $include: './missing.json5' } }",
    );
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:1:24 — session: cannot read included file ",
            path.display()
        )),
        "{msg}"
    );

    write(dir.path(), "loop.json5", "{ $include: './pincer.json' }");
    let path = write(dir.path(), "pincer.json", "{ $include: './loop.json5' }");
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(msg.contains("$include cycle"), "{msg}");

    let path = write(dir.path(), "pincer.json", "{ gateway: { $include: 5 } }");
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{}:1:14 — gateway: $include must be a file path or an array of paths, got integer",
            path.display()
        )
    );

    // Syntax errors inside an included file name that file.
    let inc = write(dir.path(), "bad.json5", "{ port: }");
    let path = write(
        dir.path(),
        "pincer.json",
        "{ gateway: { $include: './bad.json5' } }",
    );
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "{}:1:9 — syntax error: unexpected character '}}', expected a value",
            inc.display()
        )),
        "{msg}"
    );

    // Validation errors inside an included file point into that file.
    let inc = write(dir.path(), "gw.json5", "{\n  port: 1,\n  bnd: 'lan',\n}");
    let path = write(
        dir.path(),
        "pincer.json",
        "{ gateway: { $include: './gw.json5' } }",
    );
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!("invalid configuration: {}:3:3 — gateway.bnd: unknown key \"bnd\" (did you mean \"bind\"?)", std::fs::canonicalize(inc).unwrap().display())
    );
}

#[test]
fn include_depth_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        write(
            dir.path(),
            &format!("l{i}.json5"),
            &format!("{{ $include: './l{}.json5' }}", i + 1),
        );
    }
    write(dir.path(), "l12.json5", "{}");
    let path = write(dir.path(), "pincer.json", "{ $include: './l0.json5' }");
    let msg = load(&path, &opts()).unwrap_err().to_string();
    assert!(
        msg.contains("$include nesting is deeper than 10 levels"),
        "{msg}"
    );
}

// ---- env and secrets -----------------------------------------------------------------

#[test]
fn env_substitution_and_missing_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "{\n  agents: { defaults: { workspace: '${WS}/main' } },\n  channels: { telegram: { botToken: '${NOPE_TOKEN}', webhookPath: '$${LITERAL}' } },\n}",
    );
    let loaded = load(&path, &opts()).unwrap();
    assert_eq!(
        loaded.config.agents.defaults.workspace.as_deref(),
        Some("/srv/ws/main")
    );
    let tg = loaded.config.channels.telegram.as_ref().unwrap();
    assert_eq!(
        tg.bot_token,
        Some(SecretInput::Plain("${NOPE_TOKEN}".into()))
    );
    assert_eq!(tg.webhook_path.as_deref(), Some("${LITERAL}"));
    let warn: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::MissingEnv)
        .collect();
    assert_eq!(warn.len(), 1);
    assert_eq!(
        warn[0].message,
        format!(
            "{}:3:37 — channels.telegram.botToken: environment variable NOPE_TOKEN is not set; \"${{NOPE_TOKEN}}\" was left as is",
            path.display()
        )
    );
}

#[test]
fn secret_refs_resolve_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secrets/token.txt", "file-secret\n");
    let path = write(
        dir.path(),
        "pincer.json",
        r#"{
          gateway: { auth: { mode: 'token', token: { source: 'env', provider: 'default', id: 'TG_TOKEN' } } },
          models: { providers: {
            a: { apiKey: { source: 'file', id: 'secrets/token.txt' } },
            b: { apiKey: { source: 'exec', id: 'echo exec-secret' } },
            c: { apiKey: { source: 'store', id: 'openai' } },
            d: { apiKey: 'inline' },
            e: { apiKey: { source: 'env', id: 'UNSET_VAR' } },
          } },
        }"#,
    );
    let loaded = load(&path, &opts()).unwrap();
    let env = |k: &str| (k == "TG_TOKEN").then(|| "123:abc".to_string());
    let store = |provider: &str, id: &str| {
        (provider == "default" && id == "openai").then(|| "store-secret".to_string())
    };
    let ctx = SecretContext {
        env: &env,
        config_dir: dir.path(),
        store: Some(&store),
        exec_timeout: Duration::from_secs(10),
    };
    let token = loaded.config.gateway.auth.token.as_ref().unwrap();
    assert!(matches!(token, SecretInput::Ref(r) if r.source == SecretSource::Env));
    assert_eq!(
        secrets::resolve(token, "gateway.auth.token", &ctx).unwrap(),
        "123:abc"
    );
    let providers = loaded.config.models.providers.as_ref().unwrap();
    let key = |id: &str| providers[id].api_key.clone().unwrap();
    assert_eq!(
        secrets::resolve(&key("a"), "a", &ctx).unwrap(),
        "file-secret"
    );
    assert_eq!(
        secrets::resolve(&key("b"), "b", &ctx).unwrap(),
        "exec-secret"
    );
    assert_eq!(
        secrets::resolve(&key("c"), "c", &ctx).unwrap(),
        "store-secret"
    );
    assert_eq!(secrets::resolve(&key("d"), "d", &ctx).unwrap(), "inline");
    assert_eq!(
        secrets::resolve(&key("e"), "models.providers.e.apiKey", &ctx)
            .unwrap_err()
            .to_string(),
        "models.providers.e.apiKey: environment variable UNSET_VAR is not set"
    );
}

// ---- compatibility with the reference's files ----------------------------------------

/// The onboarding sample of runtime.md §1.4 (an `openclaw.json`), with the elided wizard
/// fields filled in.
const OPENCLAW_SAMPLE: &str = r#"{
  agents: {
    defaults: { workspace: "/state/workspace",
                model: { primary: "custom-127-0-0-1-9/test-model" },
                models: { "custom-127-0-0-1-9/test-model": {} } },
    entries: { main: { name: "main", workspace: "/state/workspace",
                       agentDir: "/state/agents/main/agent", identity: { name: "main" } } },
  },
  gateway: { mode: "local", auth: { mode: "token", token: "0123456789abcdef0123456789abcdef0123456789abcdef" }, port: 18789,
             bind: "loopback", tailscale: { mode: "off" } },
  tools: { profile: "full" },
  models: { mode: "merge", providers: { "custom-127-0-0-1-9": {
      baseUrl: "http://127.0.0.1:9/v1", api: "openai-completions", apiKey: "sk-test",
      models: [{ id: "test-model", name: "test-model (Custom Provider)", contextWindow: 128000,
                 maxTokens: 4096, input: ["text"], reasoning: false,
                 cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 } }] } } },
  hooks: { internal: { entries: { "session-memory": { enabled: true } } } },
  meta: { lastTouchedVersion: "2026.9.6" }, wizard: { lastRunCommand: "onboard", lastRunMode: "local" },
}"#;

#[test]
fn openclaw_onboarding_sample_loads_with_one_unimplemented_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "openclaw.json", OPENCLAW_SAMPLE);
    let loaded = load(&path, &opts()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.gateway.port(), 18789);
    assert_eq!(c.gateway.auth.mode, Some(AuthMode::Token));
    assert_eq!(c.default_agent_id(), "main");
    assert_eq!(
        c.agent_model("main").and_then(ModelSelection::primary),
        Some("custom-127-0-0-1-9/test-model")
    );
    assert_eq!(
        c.agent_workspace("main", Path::new("/state")),
        PathBuf::from("/state/workspace")
    );
    let provider = &c.models.providers.as_ref().unwrap()["custom-127-0-0-1-9"];
    assert_eq!(
        provider.models.as_ref().unwrap()[0].context_window,
        Some(128000)
    );
    let unimplemented: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Unimplemented)
        .collect();
    assert_eq!(unimplemented.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        unimplemented[0].paths,
        vec!["gateway.tailscale".to_string(), "wizard".to_string()]
    );
    assert_eq!(
        unimplemented[0].message,
        format!(
            "{}: these OpenClaw settings are not implemented by Pincer yet and are ignored: gateway.tailscale, wizard",
            path.display()
        )
    );
    // The dropped keys are still in `source` (what the user wrote) but not in `resolved`.
    assert!(loaded.source.get("wizard").is_some());
    assert!(loaded.resolved.get("wizard").is_none());
}

#[test]
fn golden_config_get_document_loads() {
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/golden/config_get.jsonl"
    ))
    .unwrap();
    let raw = golden
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["frame"]["payload"]["raw"].as_str().map(str::to_string))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "openclaw.json", &raw);
    let loaded = load(&path, &opts()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let provider = &loaded.config.models.providers.as_ref().unwrap()["mock"];
    assert_eq!(provider.timeout_seconds, Some(60));
    assert_eq!(
        loaded.config.logging.as_ref().unwrap().file.as_deref(),
        Some("<RUN_DIR>/openclaw.log")
    );
    let redacted = pincer_config::redact::redact(&loaded.source);
    assert_eq!(
        redacted["models"]["providers"]["mock"]["apiKey"],
        "__OPENCLAW_REDACTED__"
    );
}

#[test]
fn missing_file_gives_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&dir.path().join("pincer.json"), &opts()).unwrap();
    assert!(!loaded.exists);
    assert_eq!(loaded.config.gateway.port(), 18789);
    assert_eq!(loaded.config.gateway.bind(), BindMode::Loopback);
}

#[test]
fn config_path_precedence() {
    let state = Path::new("/state");
    let none = |_: &str| None;
    assert_eq!(
        pincer_config::config_path(state, &none),
        PathBuf::from("/state/pincer.json")
    );
    let oc = |k: &str| (k == "OPENCLAW_CONFIG_PATH").then(|| "/etc/openclaw.json".to_string());
    assert_eq!(
        pincer_config::config_path(state, &oc),
        PathBuf::from("/etc/openclaw.json")
    );
    let both = |k: &str| match k {
        "PINCER_CONFIG_PATH" => Some("/etc/pincer.json".to_string()),
        "OPENCLAW_CONFIG_PATH" => Some("/etc/openclaw.json".to_string()),
        _ => None,
    };
    assert_eq!(
        pincer_config::config_path(state, &both),
        PathBuf::from("/etc/pincer.json")
    );
}

// ---- schema --------------------------------------------------------------------------

#[test]
fn json_schema_is_generated_from_types() {
    let schema = json_schema();
    assert_eq!(schema["title"], "PincerConfig");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let props = schema["properties"].as_object().unwrap();
    for root in [
        "gateway", "agents", "bindings", "session", "messages", "channels", "tools", "models",
        "cron", "hooks", "logging", "env", "$schema", "meta",
    ] {
        assert!(props.contains_key(root), "missing root {root}");
    }
    let text = schema.to_string();
    assert!(text.contains("\"per-account-channel-peer\""));
    assert!(text.contains("\"openai-completions\""));
    // Every property name in the schema is a key the OpenClaw schema also has (same names).
    let gw = &schema["definitions"]["GatewayConfig"]["properties"];
    for key in gw.as_object().unwrap().keys() {
        assert!(
            pincer_config::openclaw::knows(&[
                pincer_config::openclaw::Segment::Key("gateway".into()),
                pincer_config::openclaw::Segment::Key(key.clone())
            ]),
            "gateway.{key} is not an OpenClaw key"
        );
    }
}

// ---- edits ---------------------------------------------------------------------------

#[test]
fn set_unset_patch_replace_with_base_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "// comment\n{ gateway: { port: 18789, auth: { mode: 'token', token: 'secret' } } }\n",
    );
    let o = opts();
    let before = load(&path, &o).unwrap();

    let out = edit::set(&path, &o, Some(&before.hash), "gateway.bind", json!("lan")).unwrap();
    assert_eq!(out.changed_paths, vec!["gateway.bind"]);
    assert_eq!(out.loaded.config.gateway.bind(), BindMode::Lan);
    assert_ne!(out.loaded.hash, before.hash);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Stale baseHash → conflict, nothing written.
    let err = edit::set(&path, &o, Some(&before.hash), "gateway.port", json!(1)).unwrap_err();
    assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
    assert_eq!(load(&path, &o).unwrap().config.gateway.port(), 18789);

    // Invalid result → rejected with the usual message, file untouched.
    let current = load(&path, &o).unwrap();
    let err = edit::set(
        &path,
        &o,
        Some(&current.hash),
        "gateway.bind",
        json!("everywhere"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("gateway.bind: invalid value \"everywhere\""),
        "{err}"
    );
    assert_eq!(load(&path, &o).unwrap().hash, current.hash);

    // Merge patch with a redacted placeholder keeps the secret.
    let out = edit::patch(&path, &o, None, "{ gateway: { auth: { token: '__OPENCLAW_REDACTED__' }, port: 19000 }, session: { dmScope: 'per-peer' } }").unwrap();
    let mut changed = out.changed_paths.clone();
    changed.sort();
    assert_eq!(changed, vec!["gateway.port", "session"]);
    assert_eq!(
        out.loaded.config.gateway.auth.token,
        Some(SecretInput::Plain("secret".into()))
    );

    let out = edit::unset(&path, &o, None, "session").unwrap();
    assert_eq!(out.changed_paths, vec!["session"]);
    let noop = edit::unset(&path, &o, None, "session").unwrap();
    assert!(noop.noop);

    let out = edit::replace(&path, &o, None, "{ gateway: { port: 20000 } }").unwrap();
    assert_eq!(out.loaded.config.gateway.port(), 20000);
    assert!(out.loaded.config.gateway.auth.token.is_none());
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

// ---- hot reload ----------------------------------------------------------------------

#[test]
fn frequent_readers_do_not_postpone_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "{ session: { dmScope: 'main' } }",
    );
    let o = opts();
    let initial = Arc::new(load(&path, &o).unwrap());
    let (tx, rx) = mpsc::channel();
    let _watcher = ConfigWatcher::spawn(initial, o.clone(), move |ev| {
        let _ = tx.send(ev);
    })
    .unwrap();
    // A reader (e.g. a CLI polling the gateway) opens the file far more often than the
    // debounce; the edit must still apply.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, stop) = (path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::read(&path);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    edit::write_atomic(&path, b"{ session: { dmScope: 'per-peer' } }").unwrap();
    let event = rx.recv_timeout(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
    assert!(
        matches!(event, Ok(ReloadEvent::Applied { .. })),
        "{event:?}"
    );
}

#[test]
fn watcher_applies_good_edits_and_keeps_last_good_on_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "{ gateway: { port: 18789 }, session: { dmScope: 'main' } }",
    );
    let o = opts();
    let initial = Arc::new(load(&path, &o).unwrap());
    let (tx, rx) = mpsc::channel();
    let watcher = ConfigWatcher::spawn(initial, o.clone(), move |ev| {
        let _ = tx.send(ev);
    })
    .unwrap();
    let next = |rx: &mpsc::Receiver<ReloadEvent>| {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("no reload event")
    };

    // Hot change.
    edit::write_atomic(
        &path,
        b"{ gateway: { port: 18789 }, session: { dmScope: 'per-peer' } }",
    )
    .unwrap();
    match next(&rx) {
        ReloadEvent::Applied { loaded, plan } => {
            assert_eq!(plan.hot, vec!["session.dmScope"]);
            assert!(!plan.needs_restart());
            assert_eq!(
                loaded.config.session.dm_scope(),
                pincer_sessions::DmScope::PerPeer
            );
        }
        other => panic!("{other:?}"),
    }
    // Invalid edit: rejected with a precise error.
    std::fs::write(&path, "{ gateway: { port: 'x' } }").unwrap();
    match next(&rx) {
        ReloadEvent::Rejected { error } => assert!(
            error
                .to_string()
                .contains("gateway.port: expected integer, got string"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    // Restart-class change, compared against the last *good* config.
    std::fs::write(
        &path,
        "{ gateway: { port: 18800 }, session: { dmScope: 'per-peer' } }",
    )
    .unwrap();
    match next(&rx) {
        ReloadEvent::Applied { plan, loaded } => {
            assert_eq!(plan.restart, vec!["gateway.port"]);
            assert!(plan.hot.is_empty(), "{plan:?}");
            assert_eq!(loaded.config.gateway.port(), 18800);
        }
        other => panic!("{other:?}"),
    }
    drop(watcher);
}

// ---- semantic rules, legacy shapes, agents ---------------------------------------------

#[test]
fn error_token_and_password_without_mode() {
    let (path, msg) = error_of("{\n  gateway: { auth: { token: 'a', password: 'b' } },\n}");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:2:20 — gateway.auth: both token and password are set; choose one with gateway.auth.mode (\"token\" or \"password\")",
            path.display()
        )
    );
}

#[test]
fn gateway_network_settings_are_checked_with_positions() {
    let (path, msg) =
        error_of("{\n  gateway: { trustedProxies: ['10.0.0.1', '10.0.0.0/40', 'proxy'] },\n}");
    assert_eq!(
        msg,
        format!(
            "invalid configuration (2 problems):\n  {p}:2:43 — gateway.trustedProxies[1]: \"10.0.0.0/40\": prefix length must be 0..=32\n  {p}:2:58 — gateway.trustedProxies[2]: \"proxy\" is not an IP address or CIDR range",
            p = path.display()
        )
    );
    let (path, msg) = error_of(
        "{ gateway: { nodes: { pairing: { autoApproveCidrs: ['192.168.1.0/24', 'lan'] } } } }",
    );
    assert!(
        msg.ends_with(&format!(
            "{}:1:71 — gateway.nodes.pairing.autoApproveCidrs[1]: \"lan\" is not an IP address or CIDR range",
            path.display()
        )),
        "{msg}"
    );
    let (_, msg) = error_of("{ gateway: { tls: { enabled: true, certPath: '/x/cert.pem' } } }");
    assert!(
        msg.ends_with("gateway.tls.keyPath: certPath is set but keyPath is not; set both (or neither, to use autoGenerate)"),
        "{msg}"
    );
    let (_, msg) = error_of("{ gateway: { tls: { enabled: true, autoGenerate: false } } }");
    assert!(
        msg.ends_with("gateway.tls: TLS is enabled but there is no certificate: set certPath and keyPath, or autoGenerate: true"),
        "{msg}"
    );
    let (_, msg) = error_of("{ gateway: { auth: { rateLimit: { maxAttempts: 0 } } } }");
    assert!(
        msg.ends_with("gateway.auth.rateLimit.maxAttempts: must be at least 1"),
        "{msg}"
    );
    let (path, msg) = error_of("{ gateway: { auth: { mode: 'trusted-proxy' } } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration (2 problems):\n  {p}:1:28 — gateway.auth.trustedProxy.userHeader: required when gateway.auth.mode is \"trusted-proxy\" (the header your proxy puts the authenticated user in)\n  {p}:1:28 — gateway.trustedProxies: gateway.auth.mode \"trusted-proxy\" needs at least one proxy address here (identity headers are believed only from these addresses)",
            p = path.display()
        )
    );
    // A complete trusted-proxy setup loads.
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "pincer.json",
        "{ gateway: { trustedProxies: ['10.1.0.0/16'], auth: { mode: 'trusted-proxy', trustedProxy: { userHeader: 'x-user' }, rateLimit: { maxAttempts: 3, windowMs: 1000 } }, tls: { enabled: true } } }",
    );
    assert!(load(&ok, &opts()).is_ok());
}

#[test]
fn error_allow_and_also_allow_in_one_scope() {
    let (path, msg) =
        error_of("{ tools: { byProvider: { openai: { allow: ['read'], alsoAllow: ['exec'] } } } }");
    assert_eq!(
        msg,
        format!(
            "invalid configuration: {}:1:64 — tools.byProvider.openai.alsoAllow: allow and alsoAllow cannot be used in the same scope; list everything in allow",
            path.display()
        )
    );
}

#[test]
fn legacy_agents_list_is_read_as_entries_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "{ agents: {\n  list: [ { id: 'main', default: true }, { id: 'ops', workspace: '/w/ops', model: 'openai/gpt-5' } ],\n} }",
    );
    let loaded = load(&path, &opts()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.agent_ids(), vec!["main".to_string(), "ops".to_string()]);
    assert_eq!(
        c.agent_workspace("ops", Path::new("/state")),
        PathBuf::from("/w/ops")
    );
    assert_eq!(
        c.agent_model("ops").and_then(ModelSelection::primary),
        Some("openai/gpt-5")
    );
    let legacy: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Legacy)
        .collect();
    assert_eq!(legacy.len(), 1);
    assert_eq!(
        legacy[0].message,
        format!("{}:2:3 — agents.list: legacy agent roster read as agents.entries (main, ops); rewrite it as keyed agents.entries.<id>", path.display())
    );
}

#[test]
fn agent_defaults_and_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "pincer.json",
        "{ agents: { defaults: { model: { primary: 'a/b', fallbacks: ['c/d'] } }, entries: { main: {}, Ops: { model: 'x/y' } } } }",
    );
    let c = load(&path, &opts()).unwrap().config;
    assert_eq!(c.default_agent_id(), "main");
    assert_eq!(c.agent_ids(), vec!["main".to_string(), "ops".to_string()]);
    let state = dir.path().join("state");
    assert_eq!(c.agent_workspace("main", &state), state.join("workspace"));
    assert_eq!(
        c.agent_workspace("ops", &state),
        state.join("workspace-ops")
    );
    assert_eq!(
        c.agent_model("main").unwrap().fallbacks(),
        &["c/d".to_string()]
    );
    assert_eq!(
        c.agent_model("ops").and_then(ModelSelection::primary),
        Some("x/y")
    );
    let ws = c.ensure_agent_workspace("ops", &state).unwrap();
    assert!(ws.is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&ws).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    // A single non-main entry becomes the default agent.
    let path = write(
        dir.path(),
        "pincer.json",
        "{ agents: { entries: { solo: {} } } }",
    );
    assert_eq!(
        load(&path, &opts()).unwrap().config.default_agent_id(),
        "solo"
    );
}

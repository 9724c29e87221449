//! `pincer config get [path] | set <path> <value> | unset <path> | validate | schema`.
//!
//! `get`, `set` and `unset` talk to the running gateway (`config.get`, `config.apply` with the
//! `baseHash` it returned, so the write goes through the gateway's reload path); when no
//! gateway answers they work on the file directly (`set`/`unset` validate, then write
//! atomically). `validate` and `schema` never need a gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pincer_client::ClientError;
use pincer_config::edit;
use pincer_config::{ConfigError, LoadOptions};
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum ConfigSub {
    /// Print the config file's document (or the value at a dotted path), secrets redacted.
    Get {
        path: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set a value (`gateway.port 19000`, `session.dmScope per-peer`, JSON5 values allowed).
    Set {
        path: String,
        value: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove a key.
    Unset {
        path: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Check the file offline; prints `file:line — path: reason` per problem.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the config (generated from Pincer's types).
    Schema,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Print `{ok, valid, path, issues}` as JSON.
    #[arg(long)]
    pub json: bool,
}

fn config_file() -> PathBuf {
    let state_dir = pincer_gateway::config::default_state_dir();
    pincer_config::config_path(&state_dir, &|k| std::env::var(k).ok())
}

/// A CLI value: JSON5 when it parses (numbers, booleans, objects, quoted strings), else the
/// literal text.
fn parse_value(text: &str) -> Value {
    match pincer_config::json5::parse(text, 0) {
        Ok(node) => node.to_value(),
        Err(_) => Value::String(text.to_string()),
    }
}

fn at_path(doc: &Value, path: &str) -> Result<Value> {
    let mut cur = doc;
    for seg in edit::parse_path(path)? {
        let next = match &seg {
            pincer_config::openclaw::Segment::Key(k) => cur.get(k.as_str()),
            pincer_config::openclaw::Segment::Index(i) => cur.get(*i),
        };
        cur = next.with_context(|| format!("{path} is not set"))?;
    }
    Ok(cur.clone())
}

/// No gateway answered (as opposed to the gateway refusing the request).
fn unreachable(e: &ClientError) -> bool {
    e.rpc_error().is_none()
}

pub fn run(sub: ConfigSub) -> Result<ExitCode> {
    match sub {
        ConfigSub::Get { path, conn } => get(path, conn),
        ConfigSub::Set { path, value, conn } => write(&path, Some(parse_value(&value)), conn),
        ConfigSub::Unset { path, conn } => write(&path, None, conn),
        ConfigSub::Validate(args) => Ok(validate(args.json)),
        ConfigSub::Schema => {
            print_json(pincer_config::json_schema(), false);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn get(path: Option<String>, conn: ConnArgs) -> Result<ExitCode> {
    let doc = match one_call(&conn, "config.get", Some(json!({})))? {
        Ok(p) => p["parsed"].clone(),
        Err(e) if unreachable(&e) => {
            let file = config_file();
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let node = pincer_config::json5::parse(&text, 0).map_err(|e| {
                        anyhow::anyhow!(
                            "{}:{}:{} — syntax error: {}",
                            file.display(),
                            e.line,
                            e.col,
                            e.message
                        )
                    })?;
                    pincer_config::redact::redact(&node.to_value())
                }
                Err(_) => json!({}),
            }
        }
        Err(e) => return Ok(report_error(&e)),
    };
    let doc = if doc.is_null() { json!({}) } else { doc };
    let value = match &path {
        Some(p) => at_path(&doc, p)?,
        None => doc,
    };
    print_json(&value, conn.json);
    Ok(ExitCode::SUCCESS)
}

fn write(path: &str, value: Option<Value>, conn: ConnArgs) -> Result<ExitCode> {
    let segments = edit::parse_path(path)?;
    match one_call(&conn, "config.get", Some(json!({})))? {
        Ok(current) => {
            // Edit the file's (redacted) document and send it back whole with its baseHash:
            // placeholders keep their secrets, a concurrent edit is refused.
            let mut doc = match &current["parsed"] {
                Value::Object(_) => current["parsed"].clone(),
                _ => json!({}),
            };
            match value {
                Some(v) => edit::set_path(&mut doc, &segments, v)?,
                None => {
                    edit::unset_path(&mut doc, &segments);
                }
            }
            let params = json!({"raw": doc.to_string(), "baseHash": current["hash"]});
            match one_call(&conn, "config.apply", Some(params))? {
                Ok(res) => {
                    if conn.json {
                        print_json(&res, true);
                    } else {
                        report_change(path, &res);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(report_error(&e)),
            }
        }
        Err(e) if unreachable(&e) => {
            let file = config_file();
            let opts = LoadOptions::from_process_env();
            let outcome = match value {
                Some(v) => edit::set(&file, &opts, None, path, v),
                None => edit::unset(&file, &opts, None, path),
            };
            match outcome {
                Ok(o) if o.noop => println!("{path}: unchanged ({})", file.display()),
                Ok(_) => println!(
                    "{path}: updated {} (the gateway is not running; it reads the file at start)",
                    file.display()
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}

fn report_change(path: &str, res: &Value) {
    if res["noop"] == true {
        println!("{path}: unchanged");
        return;
    }
    println!("{path}: updated {}", res["path"].as_str().unwrap_or(""));
    if res["restart"] == true {
        println!("  this change takes effect after a gateway restart");
    } else if res["applied"] == true {
        println!("  applied live");
    }
}

fn validate(json_out: bool) -> ExitCode {
    let file = config_file();
    let opts = LoadOptions::from_process_env();
    match pincer_config::load(&file, &opts) {
        Ok(loaded) => {
            if json_out {
                print_json(
                    &json!({"ok": true, "valid": true, "path": file.display().to_string(), "issues": []}),
                    true,
                );
            } else {
                if !loaded.exists {
                    println!("{}: no config file (defaults apply)", file.display());
                } else {
                    println!("{}: valid", file.display());
                }
                for w in &loaded.warnings {
                    println!("warning: {}", w.message);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let issues: Vec<Value> = match &e {
                ConfigError::Invalid { issues } => issues
                    .iter()
                    .map(|i| {
                        let mut v = json!({"path": i.path, "message": i.message, "line": i.line});
                        if let Some(a) = &i.allowed_values {
                            v["allowedValues"] = json!(a);
                        }
                        v
                    })
                    .collect(),
                other => vec![json!({"path": "(root)", "message": other.to_string()})],
            };
            if json_out {
                print_json(
                    &json!({"ok": false, "valid": false, "path": file.display().to_string(), "issues": issues}),
                    true,
                );
            } else {
                match &e {
                    ConfigError::Invalid { issues } => {
                        for i in issues {
                            println!(
                                "{}:{} — {}: {}",
                                i.file.display(),
                                i.line,
                                i.path,
                                i.message
                            );
                        }
                    }
                    other => println!("{other}"),
                }
            }
            ExitCode::from(1)
        }
    }
}

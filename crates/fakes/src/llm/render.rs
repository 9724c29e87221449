//! Renders a [`Reply`] as each provider's streaming wire format, frame by frame, with the
//! field order and framing the real services use (compact JSON, `data: ` prefixes, `event:`
//! lines for Anthropic and Responses, `data: [DONE]` for Chat Completions, NDJSON lines for
//! Ollama).

use super::script::{FakeUsage, Part, Reply, Stop, StreamErrorKind};

/// A JSON text value (already serialised).
type J = String;

/// `{"k":v,…}` with keys in the given order (serde_json's map would sort them).
fn obj(fields: &[(&str, J)]) -> J {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s(key));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

fn arr(items: &[J]) -> J {
    format!("[{}]", items.join(","))
}

fn s(text: &str) -> J {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn n(value: u64) -> J {
    value.to_string()
}

const NULL: &str = "null";

/// Per-request facts the frames mention.
pub(crate) struct Ctx<'a> {
    pub model: &'a str,
    pub seq: u64,
    pub created: u64,
    pub created_at_iso: &'a str,
    /// Chat Completions: `stream_options.include_usage` was requested.
    pub include_usage: bool,
}

fn sse(event: Option<&str>, data: &str) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// A frame that is not JSON, in the framing of each protocol.
pub(crate) fn malformed_frame(api: Api) -> String {
    match api {
        Api::ChatCompletions => "data: {\"id\":\"chatcmpl-broken\",\"choices\":[{\n\n".to_owned(),
        Api::Responses => {
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\n\n"
                .to_owned()
        }
        Api::Anthropic => {
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\n\n"
                .to_owned()
        }
        Api::Ollama => "{\"model\":\"broken\",\"message\":{\n".to_owned(),
    }
}

/// The provider's own in-stream error frame.
pub(crate) fn error_frame(api: Api, kind: StreamErrorKind, message: &str, seq: u64) -> String {
    match api {
        Api::ChatCompletions => {
            let (kind, code) = match kind {
                StreamErrorKind::RateLimit => ("requests", s("rate_limit_exceeded")),
                StreamErrorKind::Overloaded | StreamErrorKind::Server => {
                    ("server_error", NULL.to_owned())
                }
            };
            sse(
                None,
                &obj(&[(
                    "error",
                    obj(&[
                        ("message", s(message)),
                        ("type", s(kind)),
                        ("param", NULL.into()),
                        ("code", code),
                    ]),
                )]),
            )
        }
        Api::Responses => {
            let code = match kind {
                StreamErrorKind::RateLimit => "rate_limit_exceeded",
                StreamErrorKind::Overloaded | StreamErrorKind::Server => "server_error",
            };
            sse(
                Some("error"),
                &obj(&[
                    ("type", s("error")),
                    ("code", s(code)),
                    ("message", s(message)),
                    ("param", NULL.into()),
                    ("sequence_number", n(seq)),
                ]),
            )
        }
        Api::Anthropic => {
            let kind = match kind {
                StreamErrorKind::Overloaded => "overloaded_error",
                StreamErrorKind::RateLimit => "rate_limit_error",
                StreamErrorKind::Server => "api_error",
            };
            sse(
                Some("error"),
                &obj(&[
                    ("type", s("error")),
                    ("error", obj(&[("type", s(kind)), ("message", s(message))])),
                ]),
            )
        }
        Api::Ollama => format!("{}\n", obj(&[("error", s(message))])),
    }
}

/// Which wire API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Responses,
    Anthropic,
    Ollama,
}

impl Api {
    /// The response content type.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Ollama => "application/x-ndjson",
            _ => "text/event-stream; charset=utf-8",
        }
    }
}

/// All frames of a reply, in order.
pub(crate) fn frames(api: Api, reply: &Reply, ctx: &Ctx<'_>) -> Vec<String> {
    match api {
        Api::ChatCompletions => chat_completions(reply, ctx),
        Api::Responses => responses(reply, ctx),
        Api::Anthropic => anthropic(reply, ctx),
        Api::Ollama => ollama(reply, ctx),
    }
}

fn chat_completions(reply: &Reply, ctx: &Ctx<'_>) -> Vec<String> {
    let id = format!("chatcmpl-fake{}", ctx.seq);
    let chunk = |delta: J, finish: J| {
        let mut fields = vec![
            ("id", s(&id)),
            ("object", s("chat.completion.chunk")),
            ("created", n(ctx.created)),
            ("model", s(ctx.model)),
            ("service_tier", s("default")),
            ("system_fingerprint", s("fp_pincerfake")),
            (
                "choices",
                arr(&[obj(&[
                    ("index", n(0)),
                    ("delta", delta),
                    ("logprobs", NULL.into()),
                    ("finish_reason", finish),
                ])]),
            ),
        ];
        if ctx.include_usage {
            fields.push(("usage", NULL.into()));
        }
        sse(None, &obj(&fields))
    };
    let mut out = vec![chunk(
        obj(&[
            ("role", s("assistant")),
            ("content", s("")),
            ("refusal", NULL.into()),
        ]),
        NULL.into(),
    )];
    let mut tool_index = 0u64;
    for part in &reply.parts {
        match part {
            Part::Text { chunks } => {
                for c in chunks {
                    out.push(chunk(obj(&[("content", s(c))]), NULL.into()));
                }
            }
            // DeepSeek/vLLM-style reasoning field (OpenAI itself does not stream reasoning here).
            Part::Thinking { chunks, .. } => {
                for c in chunks {
                    out.push(chunk(obj(&[("reasoning_content", s(c))]), NULL.into()));
                }
            }
            Part::ToolCall {
                id: call_id,
                name,
                argument_chunks,
            } => {
                let first = obj(&[
                    ("index", n(tool_index)),
                    ("id", s(call_id)),
                    ("type", s("function")),
                    ("function", obj(&[("name", s(name)), ("arguments", s(""))])),
                ]);
                out.push(chunk(obj(&[("tool_calls", arr(&[first]))]), NULL.into()));
                for c in argument_chunks {
                    let piece = obj(&[
                        ("index", n(tool_index)),
                        ("function", obj(&[("arguments", s(c))])),
                    ]);
                    out.push(chunk(obj(&[("tool_calls", arr(&[piece]))]), NULL.into()));
                }
                tool_index += 1;
            }
        }
    }
    let finish = match reply.stop {
        Stop::Length => "length",
        Stop::Auto if reply.has_tool_calls() => "tool_calls",
        Stop::Auto => "stop",
    };
    out.push(chunk("{}".into(), s(finish)));
    if ctx.include_usage {
        let u = reply.effective_usage();
        let prompt = u.input + u.cache_read;
        let usage = obj(&[
            ("prompt_tokens", n(prompt)),
            ("completion_tokens", n(u.output)),
            ("total_tokens", n(prompt + u.output)),
            (
                "prompt_tokens_details",
                obj(&[("cached_tokens", n(u.cache_read)), ("audio_tokens", n(0))]),
            ),
            (
                "completion_tokens_details",
                obj(&[
                    ("reasoning_tokens", n(0)),
                    ("audio_tokens", n(0)),
                    ("accepted_prediction_tokens", n(0)),
                    ("rejected_prediction_tokens", n(0)),
                ]),
            ),
        ]);
        out.push(sse(
            None,
            &obj(&[
                ("id", s(&id)),
                ("object", s("chat.completion.chunk")),
                ("created", n(ctx.created)),
                ("model", s(ctx.model)),
                ("service_tier", s("default")),
                ("system_fingerprint", s("fp_pincerfake")),
                ("choices", "[]".into()),
                ("usage", usage),
            ]),
        ));
    }
    out.push("data: [DONE]\n\n".to_owned());
    out
}

fn responses_usage(u: &FakeUsage) -> J {
    let input = u.input + u.cache_read;
    obj(&[
        ("input_tokens", n(input)),
        (
            "input_tokens_details",
            obj(&[("cached_tokens", n(u.cache_read))]),
        ),
        ("output_tokens", n(u.output)),
        ("output_tokens_details", obj(&[("reasoning_tokens", n(0))])),
        ("total_tokens", n(input + u.output)),
    ])
}

fn responses(reply: &Reply, ctx: &Ctx<'_>) -> Vec<String> {
    let resp_id = format!("resp_fake{}", ctx.seq);
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut push = |out: &mut Vec<String>, kind: &str, mut fields: Vec<(&str, J)>| {
        fields.insert(0, ("type", s(kind)));
        fields.insert(1, ("sequence_number", n(seq)));
        seq += 1;
        out.push(sse(Some(kind), &obj(&fields)));
    };
    let response = |status: &str, output: J, usage: J, extra: Option<(&'static str, J)>| {
        let mut fields = vec![
            ("id", s(&resp_id)),
            ("object", s("response")),
            ("created_at", n(ctx.created)),
            ("status", s(status)),
            ("background", "false".into()),
            ("error", NULL.into()),
            ("incomplete_details", NULL.into()),
            ("instructions", NULL.into()),
            ("model", s(ctx.model)),
            ("output", output),
            ("parallel_tool_calls", "true".into()),
            ("store", "false".into()),
            ("usage", usage),
        ];
        if let Some((k, v)) = extra {
            if let Some(slot) = fields.iter_mut().find(|(key, _)| *key == k) {
                slot.1 = v;
            }
        }
        obj(&fields)
    };
    push(
        &mut out,
        "response.created",
        vec![(
            "response",
            response("in_progress", "[]".into(), NULL.into(), None),
        )],
    );
    push(
        &mut out,
        "response.in_progress",
        vec![(
            "response",
            response("in_progress", "[]".into(), NULL.into(), None),
        )],
    );
    let mut items_done: Vec<J> = Vec::new();
    for (index, part) in reply.parts.iter().enumerate() {
        let oi = n(index as u64);
        match part {
            Part::Thinking { chunks, .. } => {
                let item_id = format!("rs_fake{}_{index}", ctx.seq);
                let full: String = chunks.concat();
                push(
                    &mut out,
                    "response.output_item.added",
                    vec![
                        ("output_index", oi.clone()),
                        (
                            "item",
                            obj(&[
                                ("id", s(&item_id)),
                                ("type", s("reasoning")),
                                ("summary", "[]".into()),
                            ]),
                        ),
                    ],
                );
                let part_empty = obj(&[("type", s("summary_text")), ("text", s(""))]);
                push(
                    &mut out,
                    "response.reasoning_summary_part.added",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("summary_index", n(0)),
                        ("part", part_empty),
                    ],
                );
                for c in chunks {
                    push(
                        &mut out,
                        "response.reasoning_summary_text.delta",
                        vec![
                            ("item_id", s(&item_id)),
                            ("output_index", oi.clone()),
                            ("summary_index", n(0)),
                            ("delta", s(c)),
                        ],
                    );
                }
                push(
                    &mut out,
                    "response.reasoning_summary_text.done",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("summary_index", n(0)),
                        ("text", s(&full)),
                    ],
                );
                let summary = obj(&[("type", s("summary_text")), ("text", s(&full))]);
                push(
                    &mut out,
                    "response.reasoning_summary_part.done",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("summary_index", n(0)),
                        ("part", summary.clone()),
                    ],
                );
                let item = obj(&[
                    ("id", s(&item_id)),
                    ("type", s("reasoning")),
                    ("summary", arr(&[summary])),
                ]);
                push(
                    &mut out,
                    "response.output_item.done",
                    vec![("output_index", oi), ("item", item.clone())],
                );
                items_done.push(item);
            }
            Part::Text { chunks } => {
                let item_id = format!("msg_fake{}_{index}", ctx.seq);
                let full: String = chunks.concat();
                let item = |status: &str, content: J| {
                    obj(&[
                        ("id", s(&item_id)),
                        ("type", s("message")),
                        ("status", s(status)),
                        ("content", content),
                        ("role", s("assistant")),
                    ])
                };
                push(
                    &mut out,
                    "response.output_item.added",
                    vec![
                        ("output_index", oi.clone()),
                        ("item", item("in_progress", "[]".into())),
                    ],
                );
                let text_part = |text: &str| {
                    obj(&[
                        ("type", s("output_text")),
                        ("annotations", "[]".into()),
                        ("logprobs", "[]".into()),
                        ("text", s(text)),
                    ])
                };
                push(
                    &mut out,
                    "response.content_part.added",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("content_index", n(0)),
                        ("part", text_part("")),
                    ],
                );
                for c in chunks {
                    push(
                        &mut out,
                        "response.output_text.delta",
                        vec![
                            ("item_id", s(&item_id)),
                            ("output_index", oi.clone()),
                            ("content_index", n(0)),
                            ("delta", s(c)),
                            ("logprobs", "[]".into()),
                        ],
                    );
                }
                push(
                    &mut out,
                    "response.output_text.done",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("content_index", n(0)),
                        ("text", s(&full)),
                        ("logprobs", "[]".into()),
                    ],
                );
                push(
                    &mut out,
                    "response.content_part.done",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("content_index", n(0)),
                        ("part", text_part(&full)),
                    ],
                );
                let done = item("completed", arr(&[text_part(&full)]));
                push(
                    &mut out,
                    "response.output_item.done",
                    vec![("output_index", oi), ("item", done.clone())],
                );
                items_done.push(done);
            }
            Part::ToolCall {
                id: call_id,
                name,
                argument_chunks,
            } => {
                let item_id = format!("fc_fake{}_{index}", ctx.seq);
                let full: String = argument_chunks.concat();
                let item = |status: &str, arguments: &str| {
                    obj(&[
                        ("id", s(&item_id)),
                        ("type", s("function_call")),
                        ("status", s(status)),
                        ("arguments", s(arguments)),
                        ("call_id", s(call_id)),
                        ("name", s(name)),
                    ])
                };
                push(
                    &mut out,
                    "response.output_item.added",
                    vec![
                        ("output_index", oi.clone()),
                        ("item", item("in_progress", "")),
                    ],
                );
                for c in argument_chunks {
                    push(
                        &mut out,
                        "response.function_call_arguments.delta",
                        vec![
                            ("item_id", s(&item_id)),
                            ("output_index", oi.clone()),
                            ("delta", s(c)),
                        ],
                    );
                }
                push(
                    &mut out,
                    "response.function_call_arguments.done",
                    vec![
                        ("item_id", s(&item_id)),
                        ("output_index", oi.clone()),
                        ("arguments", s(&full)),
                    ],
                );
                let done = item("completed", &full);
                push(
                    &mut out,
                    "response.output_item.done",
                    vec![("output_index", oi), ("item", done.clone())],
                );
                items_done.push(done);
            }
        }
    }
    let usage = responses_usage(&reply.effective_usage());
    match reply.stop {
        Stop::Length => {
            let details = obj(&[("reason", s("max_output_tokens"))]);
            push(
                &mut out,
                "response.incomplete",
                vec![(
                    "response",
                    response(
                        "incomplete",
                        arr(&items_done),
                        usage,
                        Some(("incomplete_details", details)),
                    ),
                )],
            );
        }
        Stop::Auto => push(
            &mut out,
            "response.completed",
            vec![(
                "response",
                response("completed", arr(&items_done), usage, None),
            )],
        ),
    }
    out
}

fn anthropic(reply: &Reply, ctx: &Ctx<'_>) -> Vec<String> {
    let u = reply.effective_usage();
    let usage_start = obj(&[
        ("input_tokens", n(u.input)),
        ("cache_creation_input_tokens", n(u.cache_write)),
        ("cache_read_input_tokens", n(u.cache_read)),
        ("output_tokens", n(1)),
        ("service_tier", s("standard")),
    ]);
    let message = obj(&[
        ("id", s(&format!("msg_fake{}", ctx.seq))),
        ("type", s("message")),
        ("role", s("assistant")),
        ("model", s(ctx.model)),
        ("content", "[]".into()),
        ("stop_reason", NULL.into()),
        ("stop_sequence", NULL.into()),
        ("usage", usage_start),
    ]);
    let mut out = vec![
        sse(
            Some("message_start"),
            &obj(&[("type", s("message_start")), ("message", message)]),
        ),
        // Anthropic's documented ping frame has a space after the colon.
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
    ];
    let block_start = |index: usize, block: J| {
        sse(
            Some("content_block_start"),
            &obj(&[
                ("type", s("content_block_start")),
                ("index", n(index as u64)),
                ("content_block", block),
            ]),
        )
    };
    let delta = |index: usize, delta: J| {
        sse(
            Some("content_block_delta"),
            &obj(&[
                ("type", s("content_block_delta")),
                ("index", n(index as u64)),
                ("delta", delta),
            ]),
        )
    };
    let stop = |index: usize| {
        sse(
            Some("content_block_stop"),
            &obj(&[
                ("type", s("content_block_stop")),
                ("index", n(index as u64)),
            ]),
        )
    };
    for (index, part) in reply.parts.iter().enumerate() {
        match part {
            Part::Thinking { chunks, signature } => {
                out.push(block_start(
                    index,
                    obj(&[
                        ("type", s("thinking")),
                        ("thinking", s("")),
                        ("signature", s("")),
                    ]),
                ));
                for c in chunks {
                    out.push(delta(
                        index,
                        obj(&[("type", s("thinking_delta")), ("thinking", s(c))]),
                    ));
                }
                out.push(delta(
                    index,
                    obj(&[("type", s("signature_delta")), ("signature", s(signature))]),
                ));
                out.push(stop(index));
            }
            Part::Text { chunks } => {
                out.push(block_start(
                    index,
                    obj(&[("type", s("text")), ("text", s(""))]),
                ));
                for c in chunks {
                    out.push(delta(
                        index,
                        obj(&[("type", s("text_delta")), ("text", s(c))]),
                    ));
                }
                out.push(stop(index));
            }
            Part::ToolCall {
                id,
                name,
                argument_chunks,
            } => {
                out.push(block_start(
                    index,
                    obj(&[
                        ("type", s("tool_use")),
                        ("id", s(id)),
                        ("name", s(name)),
                        ("input", "{}".into()),
                    ]),
                ));
                out.push(delta(
                    index,
                    obj(&[("type", s("input_json_delta")), ("partial_json", s(""))]),
                ));
                for c in argument_chunks {
                    out.push(delta(
                        index,
                        obj(&[("type", s("input_json_delta")), ("partial_json", s(c))]),
                    ));
                }
                out.push(stop(index));
            }
        }
    }
    let stop_reason = match reply.stop {
        Stop::Length => "max_tokens",
        Stop::Auto if reply.has_tool_calls() => "tool_use",
        Stop::Auto => "end_turn",
    };
    out.push(sse(
        Some("message_delta"),
        &obj(&[
            ("type", s("message_delta")),
            (
                "delta",
                obj(&[
                    ("stop_reason", s(stop_reason)),
                    ("stop_sequence", NULL.into()),
                ]),
            ),
            ("usage", obj(&[("output_tokens", n(u.output))])),
        ]),
    ));
    out.push(sse(
        Some("message_stop"),
        &obj(&[("type", s("message_stop"))]),
    ));
    out
}

fn ollama(reply: &Reply, ctx: &Ctx<'_>) -> Vec<String> {
    let line = |message: J, done: bool| {
        format!(
            "{}\n",
            obj(&[
                ("model", s(ctx.model)),
                ("created_at", s(ctx.created_at_iso)),
                ("message", message),
                ("done", done.to_string())
            ])
        )
    };
    let mut out = Vec::new();
    for part in &reply.parts {
        match part {
            Part::Thinking { chunks, .. } => {
                for c in chunks {
                    out.push(line(
                        obj(&[
                            ("role", s("assistant")),
                            ("content", s("")),
                            ("thinking", s(c)),
                        ]),
                        false,
                    ));
                }
            }
            Part::Text { chunks } => {
                for c in chunks {
                    out.push(line(
                        obj(&[("role", s("assistant")), ("content", s(c))]),
                        false,
                    ));
                }
            }
            // Ollama streams each tool call whole, arguments as an object.
            Part::ToolCall {
                id,
                name,
                argument_chunks,
            } => {
                let raw: String = argument_chunks.concat();
                let arguments = match serde_json::from_str::<serde_json::Value>(&raw) {
                    Ok(v) if v.is_object() => v.to_string(),
                    _ => s(&raw),
                };
                let call = obj(&[
                    ("id", s(id)),
                    (
                        "function",
                        obj(&[("index", n(0)), ("name", s(name)), ("arguments", arguments)]),
                    ),
                ]);
                out.push(line(
                    obj(&[
                        ("role", s("assistant")),
                        ("content", s("")),
                        ("tool_calls", arr(&[call])),
                    ]),
                    false,
                ));
            }
        }
    }
    let u = reply.effective_usage();
    let done_reason = if reply.stop == Stop::Length {
        "length"
    } else {
        "stop"
    };
    out.push(format!(
        "{}\n",
        obj(&[
            ("model", s(ctx.model)),
            ("created_at", s(ctx.created_at_iso)),
            (
                "message",
                obj(&[("role", s("assistant")), ("content", s(""))])
            ),
            ("done", "true".into()),
            ("done_reason", s(done_reason)),
            ("total_duration", n(123_456_789)),
            ("load_duration", n(1_234_567)),
            ("prompt_eval_count", n(u.input)),
            ("prompt_eval_duration", n(2_345_678)),
            ("eval_count", n(u.output)),
            ("eval_duration", n(98_765_432)),
        ])
    ));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx(include_usage: bool) -> Ctx<'static> {
        Ctx {
            model: "m",
            seq: 1,
            created: 1_700_000_000,
            created_at_iso: "2026-01-01T00:00:00.000000Z",
            include_usage,
        }
    }

    #[test]
    fn every_json_frame_parses_and_keys_keep_wire_order() {
        let reply = Reply::new()
            .thinking("hmm ok", "sig")
            .text("Hi there")
            .tool_call("call_1", "read", "{\"path\":\"a\"}");
        for api in [Api::ChatCompletions, Api::Responses, Api::Anthropic] {
            for frame in frames(api, &reply, &ctx(true)) {
                assert!(frame.ends_with("\n\n"), "{frame}");
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                if data != "[DONE]" {
                    assert!(
                        serde_json::from_str::<serde_json::Value>(data).is_ok(),
                        "{data}"
                    );
                }
            }
        }
        for frame in frames(Api::Ollama, &reply, &ctx(false)) {
            assert!(frame.ends_with('\n') && !frame[..frame.len() - 1].contains('\n'));
            assert!(serde_json::from_str::<serde_json::Value>(&frame).is_ok());
        }
        let first = &frames(Api::ChatCompletions, &reply, &ctx(true))[0];
        assert!(first.starts_with("data: {\"id\":\"chatcmpl-fake1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000"), "{first}");
        let last_two = frames(Api::ChatCompletions, &Reply::new().text("x"), &ctx(false));
        assert_eq!(last_two.last().unwrap(), "data: [DONE]\n\n");
        assert!(
            !last_two.iter().any(|f| f.contains("\"usage\"")),
            "no usage unless include_usage"
        );
    }
}

//! Writes Chat Completions and Responses SSE streams / JSON bodies built by `pincer_automations::openai`
//! into a directory, for `examples/openai_sdk_check.py` (the official `openai` SDK parses them).
//! `cargo run -p pincer-automations --example sse_dump -- DIR && python crates/automations/examples/openai_sdk_check.py DIR`
#![allow(clippy::unwrap_used, clippy::expect_used)]
use pincer_automations::openai::*;
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp".into());
    let u = Usage {
        input_tokens: 12,
        output_tokens: 3,
        cached_tokens: 2,
        reasoning_tokens: 0,
    };
    let mut c = ChatStream::new("chatcmpl-abc", "openclaw/default", 1_700_000_000, true);
    std::fs::write(
        format!("{dir}/chat.sse"),
        c.complete_text(&["Hel", "lo", " world"], FinishReason::Stop, u)
            .concat(),
    )
    .unwrap();
    let mut t = ChatStream::new("chatcmpl-t", "openclaw", 1_700_000_000, false);
    let mut frames = vec![t.role()];
    let (i, f) = t.tool_call_start("call_1", "lookup");
    frames.push(f);
    frames.push(t.tool_call_arguments(i, "{\"q\":"));
    frames.push(t.tool_call_arguments(i, "1}"));
    frames.push(t.finish(FinishReason::ToolCalls));
    frames.push(SSE_DONE.into());
    std::fs::write(format!("{dir}/chat_tools.sse"), frames.concat()).unwrap();
    let mut r = ResponsesStream::new("resp_abc", "openclaw", 1_700_000_000);
    let mut frames = r.start();
    frames.extend(r.text_delta("Hel"));
    frames.extend(r.text_delta("lo"));
    frames.extend(r.end(ResponseEnd::Completed, u));
    std::fs::write(format!("{dir}/responses.sse"), frames.concat()).unwrap();
    let mut r2 = ResponsesStream::new("resp_fc", "openclaw", 1_700_000_000);
    let mut frames = r2.start();
    frames.extend(r2.text_delta("Let me check."));
    frames.extend(r2.function_call("call_9", "lookup", "{\"q\":1}"));
    frames.extend(r2.end(ResponseEnd::Completed, u));
    std::fs::write(format!("{dir}/responses_fc.sse"), frames.concat()).unwrap();
    let v = chat_completion(
        "chatcmpl-1",
        "openclaw",
        5,
        "Hi!",
        &[],
        FinishReason::Stop,
        u,
    );
    std::fs::write(format!("{dir}/chat.json"), v.to_string()).unwrap();
    let mut r3 = ResponsesStream::new("resp_n", "openclaw", 1_700_000_000);
    r3.text_delta("Hi!");
    std::fs::write(
        format!("{dir}/responses.json"),
        r3.final_object(ResponseEnd::Completed, u).to_string(),
    )
    .unwrap();
}

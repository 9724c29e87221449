"""The official `openai` Python package as a real client of Pincer's OpenAI-compatible API.

Run by crates/cli/tests/e2e/openai_http.rs against a real gateway whose model is the scripted
fake LLM; the Rust test queues the fake's answers in the order this script asks (REPLIES),
then checks the gateway side. Usage:

    PINCER_OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 PINCER_OPENAI_TOKEN=... python openai_sdk.py

Every check is an assert; the script prints one `ok <name>` line per scenario and exits 0.
"""
import os
import sys

import openai

BASE = os.environ["PINCER_OPENAI_BASE_URL"]
TOKEN = os.environ["PINCER_OPENAI_TOKEN"]

# The fake model's answers, in the order the scenarios below consume them.
REPLIES = [
    "Hello from the gateway.",
    "Streaming hello from the gateway.",
    "Helper stream hello.",
    "Responses hello.",
    "Streamed response text.",
    "Helper response text.",
    "Continued in the same session.",
]

client = openai.OpenAI(base_url=BASE, api_key=TOKEN, max_retries=0, timeout=30)
MESSAGES = [{"role": "user", "content": "Say hello"}]


def ok(name):
    print("ok", name, flush=True)


# 1. Chat completions, not streamed.
r = client.chat.completions.create(model="openclaw", messages=MESSAGES)
assert r.object == "chat.completion", r
assert r.choices[0].message.role == "assistant"
assert r.choices[0].message.content == REPLIES[0], r.choices[0].message.content
assert r.choices[0].finish_reason == "stop"
assert r.model == "openclaw"
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
assert r.usage.completion_tokens > 0
ok("chat")

# 2. Streamed, with usage.
chunks = list(
    client.chat.completions.create(
        model="openclaw/main",
        messages=[{"role": "system", "content": "Be brief."}] + MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
)
assert chunks[0].choices[0].delta.role == "assistant"
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == REPLIES[1], text
finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
assert len(finished) == 1 and finished[0].choices[0].finish_reason == "stop"
assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
assert len({c.id for c in chunks}) == 1
assert len(chunks) >= 4, len(chunks)
ok("chat-stream")

# 3. The accumulating helper.
with client.chat.completions.stream(model="openclaw/default", messages=MESSAGES) as s:
    deltas = [e.delta for e in s if e.type == "content.delta"]
    final = s.get_final_completion()
assert "".join(deltas) == REPLIES[2], deltas
assert final.choices[0].message.content == REPLIES[2]
ok("chat-stream-helper")

# 4. Responses, not streamed.
r = client.responses.create(model="openclaw", input="Say hello")
assert r.object == "response" and r.status == "completed", r
assert r.output_text == REPLIES[3], r.output_text
assert r.usage.total_tokens > 0
first_id = r.id
ok("responses")

# 5. Responses, streamed (raw events).
events = list(client.responses.create(model="openclaw", input="Say hello", stream=True))
types = [e.type for e in events]
assert types[:2] == ["response.created", "response.in_progress"], types
assert types[-1] == "response.completed", types
assert [e.sequence_number for e in events] == list(range(len(events)))
text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert text == REPLIES[4], text
assert events[-1].response.output_text == REPLIES[4]
ok("responses-stream")

# 6. The accumulating helper.
with client.responses.stream(model="openclaw", input=[{"role": "user", "content": "Say hello"}]) as s:
    for _ in s:
        pass
    final = s.get_final_response()
assert final.output_text == REPLIES[5], final.output_text
ok("responses-stream-helper")

# 7. previous_response_id continues the conversation in the same session.
r = client.responses.create(model="openclaw", input="And then?", previous_response_id=first_id)
assert r.output_text == REPLIES[6], r.output_text
ok("responses-continue")

# 8. Errors the SDK maps to its exception types.
try:
    openai.OpenAI(base_url=BASE, api_key="wrong-token", max_retries=0).chat.completions.create(
        model="openclaw", messages=MESSAGES
    )
    raise AssertionError("a wrong token was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
try:
    client.chat.completions.create(model="gpt-nothing", messages=MESSAGES)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404
try:
    client.chat.completions.create(model="openclaw", messages=MESSAGES, temperature=7)
    raise AssertionError("temperature 7 was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400
ok("errors")

# 9. Models.
ids = [m.id for m in client.models.list()]
assert ids[:3] == ["openclaw", "openclaw/default", "openclaw/main"], ids
assert client.models.retrieve("openclaw/main").owned_by == "openclaw"
ok("models")

sys.exit(0)

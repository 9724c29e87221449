"""Feeds the SSE streams and JSON bodies written by `cargo run -p pincer-automations --example sse_dump -- DIR`
through the official `openai` Python SDK (raw streams and the accumulating .stream() helpers).
Usage: python openai_sdk_check.py DIR   (needs: pip install openai httpx)"""
import sys
import httpx, openai
D = sys.argv[1] if len(sys.argv) > 1 else "."
def transport(file, ctype):
    body = open(f"{D}/{file}", "rb").read()
    def handler(request):
        return httpx.Response(200, headers={"content-type": ctype}, content=body)
    return httpx.MockTransport(handler)
def client(file, ctype="text/event-stream; charset=utf-8"):
    return openai.OpenAI(api_key="t", base_url="http://gw/v1", http_client=httpx.Client(transport=transport(file, ctype)))

# chat stream with usage
c = client("chat.sse")
chunks = list(c.chat.completions.create(model="openclaw/default", messages=[{"role":"user","content":"hi"}], stream=True, stream_options={"include_usage": True}))
text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
assert text == "Hello world", text
assert chunks[0].choices[0].delta.role == "assistant"
fin = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
assert fin[0].choices[0].finish_reason == "stop"
assert chunks[-1].usage.total_tokens == 15 and chunks[-1].choices == []
print("chat stream ok:", len(chunks), "chunks")
# helper stream API accumulates
with client("chat.sse").chat.completions.stream(model="openclaw", messages=[{"role":"user","content":"hi"}], stream_options={"include_usage": True}) as s:
    for _ in s: pass
    final = s.get_final_completion()
assert final.choices[0].message.content == "Hello world", final
assert final.usage.prompt_tokens == 12
print("chat .stream() helper ok")
# tools stream
with client("chat_tools.sse").chat.completions.stream(model="openclaw", messages=[{"role":"user","content":"hi"}], tools=[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{}}}}]) as s:
    for _ in s: pass
    final = s.get_final_completion()
tc = final.choices[0].message.tool_calls[0]
assert tc.function.name == "lookup" and tc.function.arguments == '{"q":1}' and final.choices[0].finish_reason == "tool_calls"
print("chat tool stream ok")
# non-stream
r = client("chat.json", "application/json").chat.completions.create(model="openclaw", messages=[{"role":"user","content":"hi"}])
assert r.choices[0].message.content == "Hi!" and r.usage.total_tokens == 15
print("chat non-stream ok")
# responses raw stream
events = list(client("responses.sse").responses.create(model="openclaw", input="hi", stream=True))
types = [e.type for e in events]
assert types[0] == "response.created" and types[-1] == "response.completed", types
assert [e.sequence_number for e in events] == list(range(len(events)))
print("responses raw stream ok:", types)
# responses helper (accumulating)
with client("responses.sse").responses.stream(model="openclaw", input="hi") as s:
    deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
    final = s.get_final_response()
assert deltas == ["Hel", "lo"], deltas
assert final.output_text == "Hello", final.output_text
assert final.usage.total_tokens == 15
print("responses .stream() helper ok; output_text =", final.output_text)
with client("responses_fc.sse").responses.stream(model="openclaw", input="hi", tools=[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{}}}]) as s:
    for _ in s: pass
    final = s.get_final_response()
fc = [o for o in final.output if o.type == "function_call"][0]
assert fc.call_id == "call_9" and fc.arguments == '{"q":1}'
assert final.output_text == "Let me check."
print("responses function call ok")
r = client("responses.json", "application/json").responses.create(model="openclaw", input="hi")
assert r.output_text == "Hi!" and r.status == "completed"
print("responses non-stream ok")

//! Standalone fake LLM provider for manual demos and for pointing the reference gateway at
//! (it speaks `openai-completions`, `openai-responses`, `anthropic-messages` and `ollama`).
//!
//! ```text
//! pincer-fake-llm [--port 18900] [--model mock-model] [--reply TEXT | --echo]
//!                 [--chunk-delay-ms 20] [--zero-latency]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions};

const USAGE: &str = "usage: pincer-fake-llm [--port N] [--model ID]... [--reply TEXT | --echo] [--chunk-delay-ms MS] [--zero-latency]";
const LOREM: &str =
    "Hello from the Pincer fake model. Lorem ipsum dolor sit amet, consectetur adipiscing elit, \
sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.";

struct Args {
    port: u16,
    models: Vec<String>,
    reply: Option<String>,
    chunk_delay: Duration,
    zero_latency: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 18900,
        models: Vec::new(),
        reply: Some(LOREM.to_owned()),
        chunk_delay: Duration::from_millis(20),
        zero_latency: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be a number 0-65535".to_owned())?
            }
            "--model" => args.models.push(value("--model")?),
            "--reply" => args.reply = Some(value("--reply")?),
            "--echo" => args.reply = None,
            "--chunk-delay-ms" => {
                let ms: u64 = value("--chunk-delay-ms")?
                    .parse()
                    .map_err(|_| "--chunk-delay-ms must be a number".to_owned())?;
                args.chunk_delay = Duration::from_millis(ms);
            }
            "--zero-latency" => args.zero_latency = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pincer-fake-llm: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let default_reply = match args.reply {
            Some(text) => DefaultReply::Fixed {
                text,
                chunk_delay: args.chunk_delay,
            },
            None => DefaultReply::Echo {
                chunk_delay: args.chunk_delay,
            },
        };
        let options = FakeLlmOptions {
            zero_latency: args.zero_latency,
            default_reply: Some(default_reply),
            models: args.models,
        };
        let fake = match FakeLlm::bind(SocketAddr::from(([127, 0, 0, 1], args.port)), options).await
        {
            Ok(fake) => fake,
            Err(error) => {
                eprintln!(
                    "pincer-fake-llm: cannot listen on 127.0.0.1:{}: {error}",
                    args.port
                );
                return ExitCode::FAILURE;
            }
        };
        println!(
            "pincer-fake-llm listening on {} (OpenAI base URL {}, Anthropic/Ollama base URL {})",
            fake.url(),
            fake.openai_base_url(),
            fake.url()
        );
        let _ = tokio::signal::ctrl_c().await;
        let c = fake.counters();
        println!(
            "pincer-fake-llm: served {} requests on {} connections",
            c.requests, c.connections_opened
        );
        ExitCode::SUCCESS
    })
}

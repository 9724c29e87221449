//! A loopback WebSocket listener for the Discord and Slack fakes: accepts connections,
//! records the request target (path + query), and hands each socket to the fake.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::WebSocketStream;

/// A server-side WebSocket.
pub type WsStream = WebSocketStream<TcpStream>;

/// Called with each accepted socket and its request target (`/path?query`).
pub type OnConnect =
    Arc<dyn Fn(WsStream, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The listener; dropping it stops accepting and aborts every connection task.
pub struct WsListener {
    addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl WsListener {
    pub async fn start(on_connect: OnConnect) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let t2 = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let on_connect = on_connect.clone();
                let handle = tokio::spawn(async move {
                    let target = Arc::new(Mutex::new(String::new()));
                    let t = target.clone();
                    #[allow(clippy::result_large_err)] // the signature is tungstenite's
                    let callback = move |req: &Request, resp: Response| {
                        *t.lock() = req.uri().to_string();
                        Ok(resp)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                        let target = target.lock().clone();
                        on_connect(ws, target).await;
                    }
                });
                let mut tasks = t2.lock();
                tasks.retain(|t| !t.is_finished());
                tasks.push(handle);
            }
        });
        Ok(WsListener {
            addr,
            tasks,
            accept,
        })
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for WsListener {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

//! A network link between two tiers that can be cut: a TCP relay on loopback.
//! While cut, every relayed connection is dropped and new ones are accepted
//! and held silent, as a dead line does (no reset, no answer), until the link
//! is back. Point a lower tier's `upstream` at [`Link::url`].

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Link {
    addr: String,
    cut: watch::Sender<bool>,
}

impl Link {
    /// A link to `upstream` (`HOST:PORT`), relaying from now on, on the current tokio runtime.
    pub async fn to(upstream: String) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the link");
        let addr = listener.local_addr().expect("link address").to_string();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else { continue };
                let mut cut = cut_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if *cut.borrow_and_update() {
                        let _ = cut.wait_for(|c| !*c).await;
                        return; // dropped once the link is back: the sender connects anew
                    }
                    let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Link { addr, cut }
    }

    /// The URL a lower tier forwards to through this link (mutual TLS).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

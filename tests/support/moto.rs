//! A real S3 API server for the tests of stores on object storage: moto's server, from the
//! Python environment tests/support/peers.rs provisions, and the boto3 scripts that fill and list
//! its buckets.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers;

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// A server on a free port (tried again on another if the port was taken meanwhile).
    pub fn start() -> Moto {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            if let Some(moto) = Moto::try_start_on(port) {
                return moto;
            }
        }
        panic!("moto_server never started on a free port");
    }

    /// A server on `port` (moto keeps its buckets in memory: a new one starts empty).
    pub fn start_on(port: u16) -> Moto {
        Moto::try_start_on(port).unwrap_or_else(|| panic!("moto_server did not start on port {port}"))
    }

    fn try_start_on(port: u16) -> Option<Moto> {
        let server = peers::python().parent().unwrap().join("moto_server");
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", server.display()));
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let t0 = Instant::now();
        loop {
            // Exited: it could not bind (and a connection would reach whoever holds the port).
            if moto.child.try_wait().unwrap().is_some() {
                return None;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Listening, and still ours a moment later.
                std::thread::sleep(Duration::from_millis(200));
                return moto.child.try_wait().unwrap().is_none().then_some(moto);
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "moto_server never listened on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The standard AWS variables pointing at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "sifa-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "sifa-test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Runs Python with boto3 and pyarrow against this server; returns its standard output.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let out = Command::new(peers::python()).arg("-c").arg(script).args(args).envs(self.env()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts every file under a directory into `bucket/prefix/`, as `aws s3 sync` does (the bucket is
/// created if need be); skips the aggregator's own `wal/` and `state/`.
pub const SYNC: &str = r#"
import os, sys, boto3
src, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=bucket)
for root, dirs, files in os.walk(src):
    dirs[:] = [d for d in dirs if d not in ("wal", "state")]
    for f in files:
        path = os.path.join(root, f)
        s3.upload_file(path, bucket, prefix + "/" + os.path.relpath(path, src))
"#;

/// Creates a bucket.
pub const MAKE_BUCKET: &str = r#"
import os, sys, boto3
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=sys.argv[1])
"#;

/// The keys under `bucket/prefix/`, one a line, sorted.
pub const KEYS: &str = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2] + "/")
print("\n".join(sorted(o["Key"] for p in pages for o in p.get("Contents", []))))
"#;

/// A TCP relay in front of a server whose link can be cut and restored: while cut, connections
/// are refused and the open ones are closed, as when the storage's network goes away.
pub struct Gate {
    pub endpoint: String,
    port: u16,
    upstream: u16,
    relay: Option<Relay>,
}

struct Relay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Gate {
    /// A relay on a free loopback port to `endpoint` (`http://127.0.0.1:PORT`), open.
    pub fn to(endpoint: &str) -> Gate {
        let upstream = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut gate = Gate { endpoint: format!("http://127.0.0.1:{port}"), port, upstream, relay: None };
        gate.open();
        gate
    }

    /// `env` with AWS_ENDPOINT_URL pointing through the gate.
    pub fn env(&self, env: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env: Vec<_> = env.iter().filter(|(k, _)| *k != "AWS_ENDPOINT_URL").cloned().collect();
        env.push(("AWS_ENDPOINT_URL", self.endpoint.clone()));
        env
    }

    /// Lets connections through again.
    pub fn open(&mut self) {
        use std::sync::atomic::Ordering;
        if self.relay.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, upstream) = (stop.clone(), open.clone(), self.upstream);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                o.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        self.relay = Some(Relay { stop, open, thread });
    }

    /// Cuts the link: new connections are refused, open ones closed.
    pub fn cut(&mut self) {
        let Some(relay) = self.relay.take() else { return };
        relay.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        relay.thread.join().unwrap();
        for s in relay.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.cut();
    }
}

//! The servers the scale-out tests use: the machine's NATS (JetStream) at
//! 127.0.0.1:4222 and Redis at 127.0.0.1:6379, or servers a test starts
//! itself on a free port; names of a test's own, removed after.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The machine's NATS server.
pub const NATS: &str = "127.0.0.1:4222";
/// The machine's Redis server.
pub const REDIS: &str = "127.0.0.1:6379";

/// Whether a test can go on without `what`: under `CI` it fails, saying
/// what is missing; elsewhere it prints why it is skipped.
fn missing(what: &str, why: &str) -> bool {
    let message = format!(
        "{what} is missing ({why}); start it as the README says (`nats-server -js`, `redis-server`)"
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

/// Whether every server of `addresses` (name, address) answers.
pub fn reachable(addresses: &[(&str, &str)]) -> bool {
    addresses.iter().all(|(name, addr)| {
        match TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)) {
            Ok(_) => true,
            Err(error) => missing(&format!("{name} at {addr}"), &error.to_string()),
        }
    })
}

/// Whether the program `binary` is installed.
pub fn installed(binary: &str) -> bool {
    match Command::new(binary).arg("--version").output() {
        Ok(output) if output.status.success() => true,
        Ok(output) => missing(binary, &String::from_utf8_lossy(&output.stderr)),
        Err(error) => missing(binary, &error.to_string()),
    }
}

/// A name no other test (or run) uses: letters, digits and `_`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}_{}_{:x}_{count}",
        std::process::id(),
        nanos & 0xff_ffff_ffff
    )
}

/// A free port on 127.0.0.1 (free when asked; the server takes it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens at `addr`, for at most 10 s.
pub fn wait_listening(addr: &str) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing listens at {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JetStream stream, the lease bucket of its consumer group, and its
/// subject prefix, all of this test's own; deleted when dropped.
pub struct Jet {
    /// The server, `nats://HOST:PORT`.
    pub url: String,
    /// The JetStream stream.
    pub stream: String,
    /// The subject prefix: records go to `<prefix>.<source>.<partition>`.
    pub prefix: String,
    /// The consumer group.
    pub consumer: String,
}

impl Jet {
    /// Names for a test on the server at `addr`; nothing is created yet
    /// (`sluice generate --create-stream` does).
    pub fn new(addr: &str) -> Jet {
        Jet {
            url: format!("nats://{addr}"),
            stream: unique("SLUICE_SCALE"),
            prefix: unique("scale"),
            consumer: unique("group"),
        }
    }

    /// `--subject-prefix` and the rest for `sluice generate --to`.
    pub fn generate_flags(&self) -> Vec<String> {
        [
            "--to",
            &self.url,
            "--nats-stream",
            &self.stream,
            "--create-stream",
            "--subject-prefix",
            &self.prefix,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Publishes `sluice generate`'s `records` records in `partitions`
    /// partitions with `seed` to this stream (made if missing), and writes
    /// the same records to `dir/published.ndjson`, returned, to know what
    /// to expect of them.
    pub fn publish(&self, dir: &Path, records: u64, partitions: u32, seed: u64) -> PathBuf {
        let flags = [
            "generate".to_owned(),
            "--records".to_owned(),
            records.to_string(),
            "--partitions".to_owned(),
            partitions.to_string(),
            "--seed".to_owned(),
            seed.to_string(),
        ];
        let file = dir.join("published.ndjson");
        let written = super::sluice().args(&flags).output().unwrap();
        assert!(written.status.success());
        std::fs::write(&file, written.stdout).unwrap();
        let published = super::sluice()
            .args(&flags)
            .args(self.generate_flags())
            .output()
            .unwrap();
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
        file
    }

    /// The flags of `sluice run` reading this stream.
    pub fn run_flags(&self) -> Vec<String> {
        [
            "--input",
            &self.url,
            "--nats-stream",
            &self.stream,
            "--nats-subject",
            &format!("{}.>", self.prefix),
            "--nats-consumer",
            &self.consumer,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for Jet {
    fn drop(&mut self) {
        let url = self.url.clone();
        let streams = [self.stream.clone(), format!("KV_{}-leases", self.consumer)];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let connecting =
                tokio::time::timeout(Duration::from_secs(3), async_nats::connect(&url));
            let Ok(Ok(client)) = connecting.await else {
                eprintln!("could not remove the streams {streams:?} at {url}");
                return;
            };
            let context = async_nats::jetstream::new(client);
            for stream in &streams {
                // A stream never made (a test that failed early) is no error.
                let _ = context.delete_stream(stream).await;
            }
        });
    }
}

/// Removes a Redis key when dropped.
pub struct RedisKey {
    /// The server's port.
    pub port: u16,
    /// The shared window's name in `redis://HOST:PORT/NAME`.
    pub name: String,
}

impl RedisKey {
    /// A name of this test's own on the server at 127.0.0.1:`port`.
    pub fn new(port: u16) -> RedisKey {
        RedisKey {
            port,
            name: unique("limit"),
        }
    }

    /// `redis://127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/{}", self.port, self.name)
    }
}

impl Drop for RedisKey {
    fn drop(&mut self) {
        // The crate keeps the window under keys that end with its name.
        let pattern = format!("*{}*", self.name);
        let port = self.port.to_string();
        let keys = Command::new("redis-cli")
            .args(["-p", &port, "--scan", "--pattern", &pattern])
            .output();
        if let Ok(keys) = keys {
            for key in String::from_utf8_lossy(&keys.stdout).lines() {
                let _ = Command::new("redis-cli")
                    .args(["-p", &port, "DEL", key])
                    .output();
            }
        }
    }
}

/// A server process of a test's own, killed when dropped.
pub struct Server {
    child: Option<Child>,
    program: String,
    args: Vec<String>,
    /// Where it listens.
    pub addr: String,
}

impl Server {
    /// Starts `program` with `args`, listening at `addr`.
    pub fn start(program: &str, args: Vec<String>, addr: String) -> Server {
        let mut server = Server {
            child: None,
            program: program.to_owned(),
            args,
            addr,
        };
        server.restart();
        server
    }

    /// `nats-server` with JetStream on a free port, its store in `dir`.
    pub fn nats(dir: &Path) -> Server {
        let port = free_port();
        let args = [
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            dir.to_str().unwrap(),
        ];
        Server::start(
            "nats-server",
            args.map(str::to_owned).to_vec(),
            format!("127.0.0.1:{port}"),
        )
    }

    /// `redis-server` on a free port, keeping nothing on disk.
    pub fn redis(dir: &Path) -> Server {
        let port = free_port();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().unwrap(),
        ];
        Server::start(
            "redis-server",
            args.map(str::to_owned).to_vec(),
            format!("127.0.0.1:{port}"),
        )
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stops it (SIGTERM, then SIGKILL after 5 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let start = Instant::now();
        while TcpStream::connect(&self.addr).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} still listens",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again, with the same flags (and port, and store).
    pub fn restart(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_listening(&self.addr);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! What the Redis tests share: reaching the server at 127.0.0.1:6379,
//! unique window names, a guard that deletes a test's key, and Redis
//! servers that a test starts, kills and restarts itself.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_processor::Quota;
use sluice_redis::KEY_PREFIX;

/// The machine's Redis.
pub const ADDRESS: &str = "127.0.0.1:6379";

/// Debian's Redis server binary.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub fn quota(limit: u32, window_ms: u64) -> Quota {
    Quota {
        limit: NonZeroU32::new(limit).unwrap(),
        window: Duration::from_millis(window_ms),
    }
}

/// Whether the machine's Redis answers; under `CI` a missing server fails
/// the test, elsewhere the test is skipped with the reason.
pub fn main_server() -> bool {
    match ping(ADDRESS) {
        Ok(()) => true,
        Err(error) => missing(&format!(
            "Redis at {ADDRESS} is unreachable: {error} (start it with `redis-server --daemonize yes`, or `service redis-server start`)"
        )),
    }
}

/// Whether Debian's `redis-server` binary is there, with the same rule.
pub fn server_binary() -> bool {
    if Path::new(REDIS_SERVER).exists() {
        return true;
    }
    missing(&format!(
        "{REDIS_SERVER} is missing (apt-get install redis-server)"
    ))
}

fn missing(message: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    false
}

/// A synchronous `PING`, bounded by a second.
pub fn ping(address: &str) -> Result<(), String> {
    let client = redis::Client::open(format!("redis://{address}/")).map_err(|e| e.to_string())?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    connection
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut connection)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A synchronous connection to `address`, for a test to look at keys.
pub fn raw(address: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{address}/")).unwrap();
    let connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    connection
}

/// A window name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test-{prefix}-{}-{nanos:x}-{count}", std::process::id())
}

/// A test's window on the machine's Redis: its URL, and its key deleted
/// when dropped, also when the test fails.
pub struct TestWindow {
    pub url: String,
    pub key: String,
}

impl TestWindow {
    pub fn new(prefix: &str) -> TestWindow {
        let name = unique(prefix);
        TestWindow {
            url: format!("redis://{ADDRESS}/{name}"),
            key: format!("{KEY_PREFIX}{name}"),
        }
    }

    /// Whether the key exists now.
    pub fn exists(&self) -> bool {
        redis::cmd("EXISTS")
            .arg(&self.key)
            .query::<i64>(&mut raw(ADDRESS))
            .unwrap()
            == 1
    }
}

impl Drop for TestWindow {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(format!("redis://{ADDRESS}/"))
            && let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1))
        {
            let _ = redis::cmd("DEL")
                .arg(&self.key)
                .arg(format!("{}{}", self.key, sluice_redis::QUOTA_KEY_SUFFIX))
                .query::<i64>(&mut connection);
        }
    }
}

/// A free port on 127.0.0.1, as the system hands them out.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own, on 127.0.0.1, without persistence,
/// in a temporary directory; killed when dropped, also when the test
/// fails.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again, on the same port, and waits (at most 10 s)
    /// until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match ping(&self.address()) {
                Ok(()) => return,
                Err(error) if Instant::now() > deadline => {
                    panic!("redis-server on port {} never answered: {error}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server must be woken to die of SIGKILL promptly on
            // every system; SIGKILL alone does it on Linux, CONT is cheap.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

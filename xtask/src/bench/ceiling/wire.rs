//! Just enough of NATS's and Redis's text protocols, over std's TCP, for
//! the ceiling runs to make, fill and delete a JetStream stream and to
//! delete a shared window's keys: no client library in xtask.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// How long a server may take to answer anything.
const ANSWER: Duration = Duration::from_secs(10);

/// Publications sent before their JetStream acks are read.
const WINDOW: usize = 256;

/// Connects to `addr` within 2 s; the error names the server (`what`).
pub fn connect(what: &str, addr: &str) -> anyhow::Result<TcpStream> {
    let socket: SocketAddr = addr
        .parse()
        .with_context(|| format!("{what}: bad address {addr}"))?;
    let stream = TcpStream::connect_timeout(&socket, Duration::from_secs(2))
        .with_context(|| format!("{what} is not reachable at {addr}"))?;
    stream.set_read_timeout(Some(ANSWER))?;
    Ok(stream)
}

/// A NATS connection, subscribed to an inbox of its own for replies.
pub struct Nats {
    /// The server's side, read line by line.
    reader: BufReader<TcpStream>,
    /// Our side.
    writer: TcpStream,
    /// Replies come to `<inbox>.<n>`.
    inbox: String,
}

impl Nats {
    /// Connects to the NATS server at `addr`, which must have JetStream.
    pub fn connect(addr: &str) -> anyhow::Result<Nats> {
        let writer = connect("NATS", addr)?;
        let mut reader = BufReader::new(writer.try_clone()?);
        let mut info = String::new();
        reader.read_line(&mut info).context("NATS sent no INFO")?;
        if !info.contains("\"jetstream\":true") {
            bail!("the NATS server at {addr} has no JetStream (start it with `nats-server -js`)");
        }
        let inbox = format!("_INBOX.xtask_{}", std::process::id());
        let mut nats = Nats {
            reader,
            writer,
            inbox,
        };
        let hello = json!({"verbose": false, "pedantic": false, "lang": "xtask", "protocol": 1});
        write!(
            nats.writer,
            "CONNECT {hello}\r\nSUB {}.* 1\r\nPING\r\n",
            nats.inbox
        )?;
        while nats.line()? != "PONG" {}
        Ok(nats)
    }

    /// The next protocol line that is not a PING (answered) or an INFO.
    fn line(&mut self) -> anyhow::Result<String> {
        loop {
            let mut line = String::new();
            if self
                .reader
                .read_line(&mut line)
                .context("reading from NATS")?
                == 0
            {
                bail!("NATS closed the connection");
            }
            let line = line.trim_end().to_owned();
            match line.as_str() {
                "PING" => self.writer.write_all(b"PONG\r\n")?,
                _ if line.starts_with("INFO ") || line == "+OK" => {}
                _ if line.starts_with("-ERR") => bail!("NATS: {line}"),
                _ => return Ok(line),
            }
        }
    }

    /// The next message's payload, as JSON.
    fn reply(&mut self) -> anyhow::Result<Value> {
        let head = self.line()?;
        if !head.starts_with("MSG ") {
            bail!("NATS sent {head:?} where a reply was due");
        }
        let size: usize = head
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no size in {head:?}"))?;
        let mut payload = vec![0; size + 2];
        self.reader.read_exact(&mut payload)?;
        payload.truncate(size);
        serde_json::from_slice(&payload).context("a JetStream reply that is no JSON")
    }

    /// Sends `body` to `subject` with a reply inbox.
    fn send(&mut self, subject: &str, n: usize, body: &str) -> anyhow::Result<()> {
        let inbox = &self.inbox;
        let size = body.len();
        write!(
            self.writer,
            "PUB {subject} {inbox}.{n} {size}\r\n{body}\r\n"
        )?;
        Ok(())
    }

    /// One JetStream API request; its answer, or an error naming it.
    fn request(&mut self, subject: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(subject, 0, &body.to_string())?;
        let answer = self.reply()?;
        if !answer["error"].is_null() {
            bail!("{subject}: {}", answer["error"]);
        }
        Ok(answer)
    }

    /// Creates the stream `name` over `<prefix>.>`, file storage.
    pub fn create_stream(&mut self, name: &str, prefix: &str) -> anyhow::Result<()> {
        let config = json!({
            "name": name,
            "subjects": [format!("{prefix}.>")],
            "storage": "file",
            "retention": "limits",
            "discard": "old",
            "num_replicas": 1,
        });
        self.request(&format!("$JS.API.STREAM.CREATE.{name}"), &config)
            .map(drop)
    }

    /// Deletes the stream `name`; one that is not there is no error.
    pub fn delete_stream(&mut self, name: &str) -> anyhow::Result<()> {
        match self.request(&format!("$JS.API.STREAM.DELETE.{name}"), &json!({})) {
            Err(error) if error.to_string().contains("not found") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Publishes each (subject, payload) in order, [`WINDOW`] at a time,
    /// and waits for JetStream to store each; how many it stored.
    pub fn publish_all(&mut self, messages: &[(String, String)]) -> anyhow::Result<usize> {
        for chunk in messages.chunks(WINDOW) {
            for (n, (subject, body)) in chunk.iter().enumerate() {
                self.send(subject, n + 1, body)?;
            }
            self.writer.flush()?;
            for _ in chunk {
                let ack = self.reply()?;
                if ack["seq"].is_null() {
                    bail!("JetStream did not store a record: {ack}");
                }
            }
        }
        Ok(messages.len())
    }
}

/// One Redis command at `addr`; its answer's first line (`+PONG`, `:2`).
pub fn redis(addr: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut stream = connect("Redis", addr)?;
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("Redis did not answer")?;
    let answer = answer.trim_end().to_owned();
    if answer.starts_with('-') || answer.is_empty() {
        bail!("Redis answered {args:?} with {answer:?}");
    }
    Ok(answer)
}

//! Real `redis-server` processes for the tests, on free ports, that a test can stop, restart
//! (empty: no persistence) or flush — and a local 3-master Redis Cluster. Never a mock.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends one inline command and returns the raw reply.
pub fn command(port: u16, line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(Vec::new())
    }

    pub fn start_with(extra: Vec<String>) -> RedisServer {
        Self::start_on(free_port(), extra)
    }

    /// A server that speaks only TLS, with a certificate from a private CA made by `openssl`;
    /// returns it and the CA certificate (PEM) a client must trust.
    pub fn start_tls() -> (RedisServer, Vec<u8>) {
        let certs = tempfile::tempdir().expect("temp dir");
        // A private CA, and a server certificate it signs (for 127.0.0.1).
        let script = "set -e
            openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=switchyard-test-ca \\
              -keyout ca.key -out ca.pem
            openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out server.csr
            printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \\
              -extfile ext.cnf -out cert.pem";
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(certs.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("sh and openssl are installed (scripts/test.sh installs openssl)");
        assert!(status.success(), "making test certificates failed");
        let port = free_port();
        let path = |f: &str| certs.path().join(f).display().to_string();
        let server = Self::start_on(
            port,
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                path("cert.pem"),
                "--tls-key-file".into(),
                path("key.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        );
        let ca = std::fs::read(certs.path().join("ca.pem")).expect("CA certificate");
        (server, ca)
    }

    /// A server on a port chosen beforehand (to start it after a client was told where).
    pub fn start_on_port(port: u16) -> RedisServer {
        Self::start_on(port, Vec::new())
    }

    fn start_on(port: u16, extra: Vec<String>) -> RedisServer {
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            extra,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let tls = self.extra.iter().any(|a| a == "--tls-port");
        while Instant::now() < deadline {
            // A TLS-only server is up once its port accepts connections.
            if tls && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            // A password-protected server answers NOAUTH: it is up all the same.
            if command(self.port, "PING").is_ok_and(|r| r.contains("PONG") || r.contains("NOAUTH"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (it keeps nothing on disk).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn cmd(&self, line: &str) -> String {
        command(self.port, line).expect("redis answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three masters, no replicas, created with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if nodes
                .iter()
                .all(|n| n.cmd("CLUSTER INFO").contains("cluster_state:ok"))
            {
                return RedisCluster { nodes };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not become ready");
    }

    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

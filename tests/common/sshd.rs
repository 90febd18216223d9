//! A real OpenSSH server on 127.0.0.1 for the remote-sync tests: its own
//! host key, one authorized key (for whoever runs the tests: root on CI),
//! and PATH set so a plain `dsync` on the remote side is the binary under
//! test. `Sshd::ssh_config` is a client config for `ssh -F`, so the tests
//! never touch ~/.ssh or /etc/ssh.
//!
//! Without sshd/ssh installed the tests print SKIPPING and pass, except on
//! CI (env `CI`), where they fail.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
pub const SSH: &str = "/usr/bin/ssh";
pub const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// The host name the client config knows (any name works with `-F`).
pub const HOST: &str = "testhost";

/// True when sshd, ssh and ssh-keygen are installed. Otherwise prints a
/// loud SKIPPING line and returns false; on CI it panics instead.
pub fn sshd_available() -> bool {
    let missing: Vec<&str> = [SSHD, SSH, SSH_KEYGEN]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("remote test")
        .to_string();
    let why = format!(
        "{} missing; `apt-get install openssh-server openssh-client`",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: sshd is required on CI: {why}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPING {test}: {why}");
    false
}

/// Returns from the calling test when sshd is not installed.
#[macro_export]
macro_rules! require_sshd {
    () => {
        if !$crate::common::sshd::sshd_available() {
            return;
        }
    };
}

/// A running sshd; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Client config for `ssh -F`: host [`HOST`] reaches this server.
    pub ssh_config: PathBuf,
    /// The client's private key (for tests that build their own config).
    pub identity: PathBuf,
    pub log: PathBuf,
}

/// The directory holding the dsync binary under test, for the remote PATH.
fn binary_dir() -> PathBuf {
    let b = super::run::binary();
    let b = b.canonicalize().unwrap_or(b);
    b.parent().expect("binary has a directory").to_path_buf()
}

fn keygen(path: &Path) {
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dsync-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl Sshd {
    /// Starts sshd with its files in a new directory under `parent`.
    pub fn start(parent: &Path) -> Sshd {
        let dir = parent.join("sshd");
        std::fs::create_dir_all(&dir).expect("mkdir sshd dir");
        let host_key = dir.join("host_key");
        let identity = dir.join("id_ed25519");
        keygen(&host_key);
        keygen(&identity);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(identity.with_extension("pub"), &authorized).expect("authorized_keys");
        if unsafe { libc::geteuid() } == 0 {
            // sshd's privilege separation directory.
            std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        }
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", binary_dir().display());
        // Several tests start servers at once: a port taken between our
        // probe and sshd's bind shows up as an early exit; try another.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {host_key}\n\
                     PidFile none\n\
                     AuthorizedKeysFile {authorized}\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PrintMotd no\n\
                     PrintLastLog no\n\
                     LogLevel VERBOSE\n\
                     SetEnv PATH={path}\n",
                    host_key = host_key.display(),
                    authorized = authorized.display(),
                ),
            )
            .expect("write sshd_config");
            let log = dir.join("sshd.log");
            let log_file = std::fs::File::create(&log).expect("create sshd.log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd did not listen on port {port} within 10 s:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if !up {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Address already in use") {
                    continue;
                }
                panic!("sshd exited at start:\n{text}");
            }
            let ssh_config = dir.join("ssh_config");
            std::fs::write(
                &ssh_config,
                Self::client_config(port, &identity, &dir.join("known_hosts")),
            )
            .expect("write ssh_config");
            return Sshd {
                child,
                port,
                dir,
                ssh_config,
                identity,
                log,
            };
        }
        panic!("sshd: no free port after 5 tries");
    }

    /// A client config for `ssh -F` that reaches `port` as [`HOST`] with
    /// `identity`, never asking anything.
    pub fn client_config(port: u16, identity: &Path, known_hosts: &Path) -> String {
        format!(
            "Host {HOST}\n\
             \x20 HostName 127.0.0.1\n\
             \x20 Port {port}\n\
             \x20 IdentityFile {}\n\
             \x20 IdentitiesOnly yes\n\
             \x20 UserKnownHostsFile {}\n\
             \x20 StrictHostKeyChecking no\n\
             \x20 BatchMode yes\n\
             \x20 LogLevel ERROR\n\
             \x20 ConnectTimeout 10\n",
            identity.display(),
            known_hosts.display()
        )
    }

    /// `ssh -F CONF` as words, to start a command template with.
    pub fn ssh_words(&self) -> Vec<String> {
        vec![
            SSH.to_string(),
            "-F".to_string(),
            self.ssh_config.display().to_string(),
        ]
    }

    /// The server's log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

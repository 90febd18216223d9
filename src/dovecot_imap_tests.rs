//! Running the real Dovecot IMAP server from unit tests: one session as
//! `nobody` on a store the test made, and reading what it answered. Shared
//! by the Maildir and mbox stores' Dovecot tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub const IMAP: &str = "/usr/lib/dovecot/imap";

/// Whether Dovecot can be run here (installed, and we are root so it can
/// run as `nobody`); otherwise says loudly why the test is skipped.
pub fn available() -> bool {
    if !Path::new(IMAP).exists() {
        eprintln!("SKIPPED: {IMAP} is missing (install dovecot-imapd to run this test)");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: running Dovecot as nobody needs root (setpriv)");
        return false;
    }
    true
}

/// Writes `<base>/dovecot.conf` serving `mail_location` as `nobody`, with
/// the namespace the tests use (separator `/`), and returns its path.
pub fn write_conf(base: &Path, mail_location: &str) -> std::path::PathBuf {
    let conf = base.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "mail_location = {mail_location}\n\
             mail_uid = nobody\nmail_gid = nogroup\nfirst_valid_uid = 0\n\
             ssl = no\nlog_path = /dev/stderr\n\
             namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n"
        ),
    )
    .unwrap();
    conf
}

/// Runs one IMAP session with these commands (tags `t0`, `t1`, ... are
/// added) on the config `conf`, after giving `base` to `nobody`; `env`
/// adds `KEY=VALUE` pairs to Dovecot's otherwise empty environment.
/// Panics when Dovecot logs an error or a command does not answer OK.
pub fn imap(base: &Path, conf: &Path, env: &[&str], cmds: &[&str]) -> String {
    // May race with a child renaming files (the concurrency tests); a
    // file left unreadable would make Dovecot complain below.
    let _ = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(base)
        .stderr(Stdio::null())
        .status();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "env",
            "-i",
        ])
        .arg(format!("HOME={}", base.display()))
        .arg("USER=nobody")
        .args(env)
        .arg(IMAP)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for (i, c) in cmds.iter().enumerate() {
        input.push_str(&format!("t{i} {c}\r\n"));
    }
    input.push_str("z LOGOUT\r\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Error") && !stderr.contains("Panic"),
        "Dovecot complained:\n{stderr}\n{stdout}"
    );
    for (i, _) in cmds.iter().enumerate() {
        assert!(
            stdout.contains(&format!("t{i} OK")),
            "command t{i} failed:\n{stdout}\n{stderr}"
        );
    }
    stdout
}

/// `(uid, flags, internaldate, size)` from the FETCH responses that carry
/// FLAGS, as Dovecot prints them (missing items are empty / 0).
pub fn fetched(out: &str) -> Vec<(u32, String, String, u64)> {
    let mut v = Vec::new();
    for line in out
        .lines()
        .filter(|l| l.starts_with("* ") && l.contains(" FETCH (") && l.contains("FLAGS ("))
    {
        let field = |name: &str| -> String {
            let Some(i) = line.find(name) else {
                return String::new();
            };
            let rest = &line[i + name.len()..];
            if let Some(r) = rest.strip_prefix('(') {
                r[..r.find(')').unwrap()].to_string()
            } else if let Some(r) = rest.strip_prefix('"') {
                r[..r.find('"').unwrap()].to_string()
            } else {
                rest.split([' ', ')']).next().unwrap().to_string()
            }
        };
        v.push((
            field("UID ").parse().unwrap(),
            field("FLAGS "),
            field("INTERNALDATE "),
            field("RFC822.SIZE ").parse().unwrap_or(0),
        ));
    }
    v
}

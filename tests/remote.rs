//! Remote sync: `dsync backup` with the other side started over a real
//! sshd on 127.0.0.1 (or by any command), judged by real Dovecot.
//!
//! Every LOCATION2 form that starts a remote side is covered: `host`,
//! `user@host` (the remote drops to that user), a whole command line, and
//! a path to a script; `-R` and `mirror` over ssh; and the ways a remote side fails to
//! start, dies mid-run, or is not a dsync we can talk to. Each failure
//! must end the run quickly with one clear line, leave both stores valid
//! for Dovecot, and a rerun must converge.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::{dsync, write_config, Run};
use common::sshd::{Sshd, HOST};
use common::users::{ensure_test_user, TEST_USER};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes the remote side's own config (`<t>/remote/dsync.conf`) with
/// `mail_location`, as a remote server's /etc/dovecot/dovecot.conf would
/// hold it.
fn remote_config(t: &Path, mail_location: &str) -> PathBuf {
    let dir = t.join("remote");
    fs::create_dir_all(&dir).unwrap();
    // The remote may drop to an unprivileged user before it reads nothing
    // more, but the directory must stay traversable for the judge.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    write_config(&dir, Some(mail_location))
}

/// `dsync_remote_cmd` for `host` / `user@host` LOCATION2s: ssh through the
/// test server, the remote reading `remote_conf`.
fn remote_cmd(sshd: &Sshd, remote_conf: &Path) -> String {
    format!(
        "dsync_remote_cmd=ssh -F {} %{{host}} dsync -c {} -u %{{user}} server",
        sshd.ssh_config.display(),
        remote_conf.display()
    )
}

/// `dsync -c CONF -o mail_location=SRC -v ARGS…`, with `-v` so the
/// traffic line is printed.
fn run(t: &Path, local: &str, args: &[&str]) -> Run {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    dsync(t, Some(local), &all)
}

/// The bytes the leader sent and received, from its `-v` traffic line.
fn traffic(r: &Run) -> (u64, u64) {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("traffic with"))
        .unwrap_or_else(|| panic!("no traffic line in:\n{}", r.stderr));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{line}");
    (nums[0], nums[1])
}

/// The lines of stderr that are not `-v` chatter.
fn error_lines(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" INFO ") && !l.contains(" DEBUG "))
        .collect()
}

/// Checks the run failed (exit 1) with exactly one error line, and
/// returns that line.
#[track_caller]
fn the_one_error_line(r: &Run, what: &str) -> String {
    r.expect_code(1);
    let lines = error_lines(r);
    eprintln!("{what}: {lines:?}");
    assert_eq!(lines.len(), 1, "one clear line, got:\n{}", r.stderr);
    lines[0].to_string()
}

fn script(path: &Path, body: &str) -> PathBuf {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

#[test]
fn host_reads_its_own_config_and_reruns_are_cheap() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 101, 25);
    let dst = Maildir::at(t.path().join("dest"));
    let rconf = remote_config(t.path(), &dst.location());
    let cmd = remote_cmd(&sshd, &rconf);
    let first = run(t.path(), &src.location(), &["-o", &cmd, "backup", HOST]);
    first.expect_ok();
    let s = snapshot(&src.location());
    assert_same(&s, &snapshot(&dst.location()));

    // Nothing changed: only the listing crosses the wire.
    let noop = run(t.path(), &src.location(), &["-o", &cmd, "backup", HOST]);
    noop.expect_ok();
    let (ns, nr) = traffic(&noop);
    let (fs_, fr) = traffic(&first);
    eprintln!(
        "wire bytes: first backup sent {fs_} received {fr}; no-op rerun sent {ns} received {nr}"
    );
    assert!(ns + nr < 20_000, "a no-op rerun moved {ns}+{nr} bytes");

    // A few changes: one new message, flags on another; only those move.
    let mut g = Gen::new(102);
    src.inbox()
        .put(&Msg::new(g.message(3000, Eol::Crlf)).mtime(1_700_000_000));
    let mut imap = imap_session(&src.location());
    imap.select("INBOX").unwrap();
    imap.store("1", "+FLAGS", &["\\Flagged"]).unwrap();
    imap.logout().unwrap();
    let changed = run(t.path(), &src.location(), &["-o", &cmd, "backup", HOST]);
    changed.expect_ok();
    let (cs, cr) = traffic(&changed);
    eprintln!("wire bytes: rerun after 1 new message + 1 flag change sent {cs} received {cr}");
    assert!(cs < 40_000, "a small change sent {cs} bytes");
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

/// A loud skip, straight to the process's stderr (eprintln! would be
/// captured and shown only for failing tests).
fn skipping(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPING {test}: {why} (to create and become {TEST_USER})"
    );
}

#[test]
fn user_at_host_drops_privileges_to_that_user() {
    require_dovecot!();
    require_sshd!();
    if unsafe { libc::geteuid() } != 0 {
        skipping("user_at_host_drops_privileges_to_that_user", "needs root");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return;
    }
    let (uid, gid) = ensure_test_user();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 111, 12);
    // The user's mail directory: its own, as on a mail server.
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    let dst = Maildir::at(home.join("Maildir"));
    let rconf = remote_config(t.path(), &dst.location());
    let cmd = remote_cmd(&sshd, &rconf);
    let target = format!("{TEST_USER}@{HOST}");
    run(t.path(), &src.location(), &["-o", &cmd, "backup", &target]).expect_ok();

    let mut wrong = Vec::new();
    walk(&dst.root, &mut |p, m| {
        if (m.uid(), m.gid()) != (uid, gid) {
            wrong.push(format!("{} is {}:{}", p.display(), m.uid(), m.gid()));
        }
        Ok(())
    })
    .unwrap();
    assert!(
        wrong.is_empty(),
        "files the remote wrote are not owned by {TEST_USER} ({uid}:{gid}):\n{}",
        wrong.join("\n")
    );
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
    // A rerun as the user finds its own files (and Dovecot's) usable.
    run(t.path(), &src.location(), &["-o", &cmd, "backup", &target]).expect_ok();
}

#[test]
fn user_at_host_with_an_unknown_user_is_a_clear_error() {
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 112, 2);
    let rconf = remote_config(t.path(), "maildir:/nonexistent/dsync-test");
    let cmd = remote_cmd(&sshd, &rconf);
    let r = run(
        t.path(),
        &src.location(),
        &["-o", &cmd, "backup", &format!("no-such-user-dsync@{HOST}")],
    );
    r.expect_code(1);
    r.expect_stderr_contains("no-such-user-dsync");
    r.expect_stderr_contains("not found");
}

#[test]
fn whole_command_line() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 121, 10);
    let dst = Maildir::at(t.path().join("dest"));
    let rconf = remote_config(t.path(), "maildir:/nonexistent/overridden");
    // `server` is appended when the command does not end with it …
    let mut args: Vec<String> = vec!["backup".into()];
    args.extend(sshd.ssh_words());
    args.extend(
        [
            HOST,
            "dsync",
            "-c",
            &rconf.display().to_string(),
            "-o",
            &format!("mail_location={}", dst.location()),
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run(t.path(), &src.location(), &argv).expect_ok();
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
    // … and not doubled when it does. The remote's log lines (-D) come
    // through as they are printed, prefixed.
    let mut again = argv.clone();
    again.extend(["-D", "server"]);
    let r = run(t.path(), &src.location(), &again);
    r.expect_ok();
    eprintln!("remote -D:\n{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("remote: ") && l.contains("DEBUG")),
        "no relayed remote log lines:\n{}",
        r.stderr
    );
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

#[test]
fn path_to_a_script() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 131, 10);
    let dst = Maildir::at(t.path().join("dest"));
    let rconf = remote_config(t.path(), &dst.location());
    let s = script(
        &t.path().join("to-backup-host.sh"),
        &format!(
            "exec ssh -F {} {HOST} dsync -c {} \"$@\"",
            sshd.ssh_config.display(),
            rconf.display()
        ),
    );
    run(
        t.path(),
        &src.location(),
        &["backup", &s.display().to_string()],
    )
    .expect_ok();
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

#[test]
fn reverse_backup_over_ssh() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    // The remote holds the mail; the local side becomes its copy.
    let remote_src = typical_maildir(&t.path().join("remote-mail"), 141, 15);
    // Bodies bigger than any pipe or ssh window must stream both ways.
    let mut g = Gen::new(142);
    for i in 0..2 {
        remote_src
            .folder("Large")
            .put(&Msg::new(g.message(6 << 20, Eol::Crlf)).mtime(1_695_000_000 + i));
    }
    let local = Maildir::at(t.path().join("local-copy"));
    let rconf = remote_config(t.path(), &remote_src.location());
    let cmd = remote_cmd(&sshd, &rconf);
    let r = run(
        t.path(),
        &local.location(),
        &["-o", &cmd, "-R", "backup", HOST],
    );
    r.expect_ok();
    let s = snapshot(&remote_src.location());
    assert_same(&s, &snapshot(&local.location()));
    let (sent, received) = traffic(&r);
    eprintln!("wire bytes: -R backup sent {sent} received {received}");
    assert!(received > sent, "the bodies come from the remote side");
    let noop = run(
        t.path(),
        &local.location(),
        &["-o", &cmd, "-R", "backup", HOST],
    );
    noop.expect_ok();
    let (sent, received) = traffic(&noop);
    eprintln!("wire bytes: -R no-op rerun sent {sent} received {received}");
    assert!(sent + received < 20_000);
    assert_same(&s, &snapshot(&local.location()));
}

#[test]
fn remote_without_dsync_on_path() {
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 151, 2);
    // The remote shell runs `PATH=/nonexistent dsync server`: no dsync.
    let mut args: Vec<String> = vec!["backup".into()];
    args.extend(sshd.ssh_words());
    args.extend([HOST, "PATH=/nonexistent", "dsync"].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let r = dsync(t.path(), Some(&src.location()), &argv);
    assert!(started.elapsed() < Duration::from_secs(30));
    let line = the_one_error_line(&r, "remote without dsync");
    assert!(line.contains("could not start"), "{}", line);
    assert!(line.contains("dsync: command not found"), "{}", line);
}

#[test]
fn ssh_authentication_failure_and_closed_port() {
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 161, 2);
    let rconf = remote_config(t.path(), "maildir:/nonexistent/never");

    // A key the server does not know.
    let stranger = t.path().join("stranger_key");
    let out = Command::new(common::sshd::SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(out.status.success());
    let conf = t.path().join("ssh_config_stranger");
    fs::write(
        &conf,
        Sshd::client_config(sshd.port, &stranger, &t.path().join("known_hosts_2")),
    )
    .unwrap();
    let template = |conf: &Path| {
        format!(
            "dsync_remote_cmd=ssh -F {} %{{host}} dsync -c {} server",
            conf.display(),
            rconf.display()
        )
    };
    let started = Instant::now();
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["-o", &template(&conf), "backup", HOST],
    );
    let line = the_one_error_line(&r, "auth failure");
    assert!(line.contains("could not start"), "{}", line);
    assert!(line.contains("Permission denied"), "{}", line);

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = t.path().join("ssh_config_closed");
    fs::write(
        &conf,
        Sshd::client_config(port, &sshd.identity, &t.path().join("known_hosts_3")),
    )
    .unwrap();
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["-o", &template(&conf), "backup", HOST],
    );
    let line = the_one_error_line(&r, "closed port");
    assert!(line.contains("Connection refused"), "{}", line);
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Copies the first 4 MB of stdin to stdout as they come (head -c would
/// hold small writes in its stdio buffer and stall the handshake). perl is
/// part of every Debian system (perl-base).
const COPY_4MB: &str = "perl -e 'my $left = 4000000; while ($left > 0) { my $n = sysread(STDIN, my $b, 65536) or last; syswrite(STDOUT, $b); $left -= $n }'";

/// Runs dsync in the background (the test kills part of it meanwhile).
fn spawn_dsync(t: &Path, local: &str, args: &[String]) -> std::process::Child {
    let conf = write_config(t, Some(local));
    Command::new(common::run::binary())
        .arg("-c")
        .arg(&conf)
        .arg("-o")
        .arg(format!("mail_location={local}"))
        .args(args)
        .current_dir(t)
        .env("HOME", t)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsync")
}

/// A background dsync that is killed if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn wait_with_output(mut self) -> std::process::Output {
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let status = self.0.wait().unwrap();
        std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which process dies in the middle of a transfer.
#[derive(Clone, Copy, Debug)]
enum Victim {
    /// The local ssh client (the link goes down).
    SshClient,
    /// The remote `dsync server` (it crashes).
    RemoteDsync,
    /// The local dsync itself (SIGTERM: an impatient user, a shutdown).
    LocalDsync,
}

/// A backup with a 12 MB message is interrupted mid-transfer by killing
/// `victim`: the local dsync exits 1 within seconds saying what happened
/// (`expect_in_message`; unless it is the victim), both stores stay valid
/// for Dovecot, and a rerun converges.
fn interrupted_transfer(victim: Victim, expect_in_message: &str) {
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = Maildir::create(t.path().join("src"));
    let mut g = Gen::new(171);
    for i in 0..5 {
        src.inbox()
            .put(&Msg::new(g.message(2000, Eol::Crlf)).mtime(1_690_000_000 + i));
    }
    src.folder("Big")
        .put(&Msg::new(g.message(12 << 20, Eol::Crlf)).mtime(1_690_001_000));
    src.folder("Big")
        .put(&Msg::new(g.message(2000, Eol::Lf)).mtime(1_690_001_001));
    let s = snapshot(&src.location());
    let dst = Maildir::at(t.path().join("dest"));
    let rconf = remote_config(t.path(), &dst.location());

    // The remote side sees only the first 4 MB of what is sent, then the
    // stream stalls: the run is certainly mid-transfer when the victim
    // dies. The stall ends by itself, so a surviving remote dsync then
    // sees end of input and lets go of its store.
    let mark = t.path().join("stalled");
    let server_pid = t.path().join("server.pid");
    let stall = script(
        &t.path().join("stalling-server.sh"),
        &format!(
            "{{ {COPY_4MB}; touch {mark}; sleep 3; }} | \
             sh -c 'echo $$ > {pid}; exec dsync -c {conf} \"$@\"' sh \"$@\"",
            conf = rconf.display(),
            mark = mark.display(),
            pid = server_pid.display(),
        ),
    );
    let client_pid = t.path().join("ssh.pid");
    let client = script(
        &t.path().join("ssh-client.sh"),
        &format!(
            "echo $$ > {}; exec ssh -F {} {HOST} {} \"$@\"",
            client_pid.display(),
            sshd.ssh_config.display(),
            stall.display()
        ),
    );
    let mut child = KillOnDrop(spawn_dsync(
        t.path(),
        &src.location(),
        &["backup".into(), client.display().to_string()],
    ));
    wait_for("the transfer to stall", Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("dsync ended ({status}) before the transfer stalled:\n{err}");
        }
        mark.exists()
    });
    let pid = |f: &Path| -> i32 { fs::read_to_string(f).unwrap().trim().parse().unwrap() };
    let (pid, signal) = match victim {
        Victim::SshClient => (pid(&client_pid), libc::SIGKILL),
        Victim::RemoteDsync => (pid(&server_pid), libc::SIGKILL),
        Victim::LocalDsync => (child.0.id() as i32, libc::SIGTERM),
    };
    let killed = Instant::now();
    unsafe { libc::kill(pid, signal) };
    let out = child.wait_with_output();
    let took = killed.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{victim:?} killed: exit {:?} after {took:?}:\n{stderr}",
        out.status.code()
    );
    if let Victim::LocalDsync = victim {
        assert_eq!(out.status.code(), None, "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(took < Duration::from_secs(10), "took {took:?} to notice");
        assert!(stderr.contains(expect_in_message), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    }

    // Both sides are valid for Dovecot (the snapshots succeed), and the
    // source is what it was.
    assert_same(&s, &snapshot(&src.location()));
    let partial = snapshot(&dst.location());
    eprintln!(
        "{victim:?} killed: DEST holds {} of {} messages",
        partial.message_count(),
        s.message_count()
    );
    // A rerun (waiting for the stalled remote's lock if need be) converges.
    let rerun = dsync(
        t.path(),
        Some(&src.location()),
        &["-o", &remote_cmd(&sshd, &rconf), "backup", HOST],
    );
    rerun.expect_ok();
    assert_same(&s, &snapshot(&dst.location()));
}

#[test]
fn ssh_killed_mid_transfer() {
    require_dovecot!();
    require_sshd!();
    interrupted_transfer(Victim::SshClient, "was killed by signal 9");
}

#[test]
fn remote_dsync_killed_mid_transfer() {
    require_dovecot!();
    require_sshd!();
    // ssh passes on the remote shell's status: 128 + SIGKILL.
    interrupted_transfer(Victim::RemoteDsync, "exited with status 137");
}

#[test]
fn local_dsync_killed_mid_transfer() {
    require_dovecot!();
    require_sshd!();
    interrupted_transfer(Victim::LocalDsync, "");
}

#[test]
fn dash_u_for_another_user_needs_root() {
    if unsafe { libc::geteuid() } != 0 {
        skipping("dash_u_for_another_user_needs_root", "needs root");
        return;
    }
    let (uid, gid) = ensure_test_user();
    let t = tempdir();
    let conf = write_config(t.path(), Some("maildir:/nonexistent/dsync-test"));
    // As the unprivileged user, `-u root` must be refused, not served
    // with the wrong ownership.
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(common::run::binary())
        .arg("-c")
        .arg(&conf)
        .args(["-u", "root", "server"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("only root can act as another user"),
        "{stderr}"
    );
}

#[test]
fn protocol_version_mismatch() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 181, 2);
    // A remote that picks a version we never offered.
    let future = script(
        &t.path().join("future-dsync.sh"),
        "printf 'HELLO\\tdsync-rs\\t99\\n'; cat >/dev/null",
    );
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &future.display().to_string()],
    );
    let line = the_one_error_line(&r, "version 99");
    assert!(line.contains("version mismatch"), "{}", line);
    assert!(line.contains("99") && line.contains("1..1"), "{}", line);

    // A remote that refuses our range, as `dsync server` does.
    let older = script(
        &t.path().join("older-dsync.sh"),
        "read hello; printf 'ERROR\\tfail\\tprotocol version mismatch: local dsync speaks versions 1..1, remote dsync speaks 2..3\\n'",
    );
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &older.display().to_string()],
    );
    let line = the_one_error_line(&r, "refused");
    assert!(line.contains("remote dsync speaks 2..3"), "{}", line);

    // Dovecot's own dsync, first on the remote PATH.
    let dovecot = script(
        &t.path().join("dovecot-dsync.sh"),
        "printf 'VERSION\\tdsync\\t3\\t6\\n'; cat >/dev/null",
    );
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &dovecot.display().to_string()],
    );
    let line = the_one_error_line(&r, "Dovecot's dsync");
    assert!(line.contains("Dovecot's dsync"), "{}", line);

    // Something that is not a dsync at all.
    let other = script(&t.path().join("not-dsync.sh"), "echo 'Welcome to host!'");
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &other.display().to_string()],
    );
    r.expect_code(1);
    eprintln!("not a dsync: {:?}", error_lines(&r));
    r.expect_stderr_contains("HELLO");
}

#[test]
fn remote_store_that_cannot_be_opened() {
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 191, 2);
    let rconf = remote_config(t.path(), "maildir:/dev/null/Maildir");
    let cmd = remote_cmd(&sshd, &rconf);
    let r = run(t.path(), &src.location(), &["-o", &cmd, "backup", HOST]);
    // One line: the remote's own complaint that we hung up is not relayed.
    let line = the_one_error_line(&r, "remote store");
    assert!(line.contains("/dev/null/Maildir"), "{}", r.stderr);
}

#[test]
fn remote_that_never_answers_times_out() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 192, 2);
    let silent = script(&t.path().join("silent.sh"), "exec sleep 60");
    let started = Instant::now();
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &[
            "-o",
            "dsync_io_timeout=2",
            "backup",
            &silent.display().to_string(),
        ],
    );
    let took = started.elapsed();
    let line = the_one_error_line(&r, &format!("silent remote after {took:?}"));
    assert!(line.contains("no progress"), "{}", line);
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn missing_ssh_binary() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 193, 1);
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &[
            "-o",
            "dsync_remote_cmd=/nonexistent/ssh %{host} dsync server",
            "backup",
            "somehost",
        ],
    );
    let line = the_one_error_line(&r, "missing ssh");
    assert!(line.contains("/nonexistent/ssh"), "{}", line);
    assert!(line.contains("No such file"), "{}", line);
}

#[test]
fn mirror_over_ssh() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let local = typical_maildir(&t.path().join("local"), 201, 12);
    let far = typical_maildir(&t.path().join("far"), 202, 7);
    let rconf = remote_config(t.path(), &far.location());
    let cmd = remote_cmd(&sshd, &rconf);
    let r = run(t.path(), &local.location(), &["-o", &cmd, "mirror", HOST]);
    r.expect_ok();
    let (sent, received) = traffic(&r);
    eprintln!("wire bytes: first mirror sent {sent} received {received}");
    let a = snapshot(&local.location());
    assert_same(&a, &snapshot(&far.location()));

    // A change on each side; a mirror brings both to the union.
    let mut g = Gen::new(203);
    far.inbox()
        .put(&Msg::new(g.message(1500, Eol::Lf)).mtime(1_699_000_000));
    let mut imap = imap_session(&local.location());
    imap.select("INBOX").unwrap();
    imap.store("2", "+FLAGS", &["\\Answered"]).unwrap();
    imap.logout().unwrap();
    let r = run(t.path(), &local.location(), &["-o", &cmd, "mirror", HOST]);
    r.expect_ok();
    let (sent, received) = traffic(&r);
    eprintln!("wire bytes: mirror after a change on each side sent {sent} received {received}");
    let a = snapshot(&local.location());
    assert_same(&a, &snapshot(&far.location()));
    // Both INBOXes' messages, and the new one.
    assert_eq!(a.mailbox("INBOX").messages.len(), 12 + 7 + 1);
}

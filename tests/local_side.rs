//! A local LOCATION2 is served by a child process of the same binary
//! (`dsync ... server --local-copy`), as a remote one is over ssh: these
//! tests show it is a process of its own, that the options which decide
//! its store reach it (`-c`, `-o`, `-u`, `~`/`%u` in LOCATION2, location
//! parameters), and that it does not outlive a killed leader.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::{binary, dsync, write_config};
use common::snapshot::{assert_same, snapshot};
use common::users::{ensure_test_user, TEST_USER};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `dsync -c <t>/dsync.conf -o mail_location=SRC ARGS...` and returns
/// its pid with its output.
fn run_with_pid(t: &Path, src: &str, args: &[&str]) -> (u32, Output) {
    let conf = write_config(t, Some(src));
    let child = Command::new(binary())
        .arg("-c")
        .arg(&conf)
        .arg("-o")
        .arg(format!("mail_location={src}"))
        .args(args)
        .current_dir(t)
        .env("HOME", t)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsync");
    let pid = child.id();
    (pid, child.wait_with_output().expect("wait for dsync"))
}

/// The pid a run's lock file in `root` names (the process that held it).
fn lock_holder(root: &Path) -> u32 {
    let text = fs::read_to_string(root.join("dsync.lock")).expect("read dsync.lock");
    text.trim().parse().expect("a pid in dsync.lock")
}

/// The number after `key` in `text` (`pid 1234` -> 1234).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn local_location2_is_served_by_a_child_process() {
    require_dovecot!();
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 301, 9);
    let dst = Maildir::at(t.path().join("dest"));
    let (pid, out) = run_with_pid(
        t.path(),
        &src.location(),
        &["-D", "mirror", &dst.location()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));

    // The debug log names the child and its command line: this binary,
    // the leader's config, LOCATION2 as its mail_location, and the
    // local-copy feature.
    let started = stderr
        .lines()
        .find(|l| l.contains("started the LOCATION2 side"))
        .unwrap_or_else(|| panic!("no 'started the LOCATION2 side' line:\n{stderr}"));
    let child = number_after(started, "(pid").expect("the child's pid") as u32;
    assert_ne!(child, pid, "{started}");
    assert!(
        started.contains(&binary().display().to_string()),
        "{started}"
    );
    for word in [
        format!(" -c {}", t.path().join("dsync.conf").display()),
        format!(" -o mail_location={} ", dst.location()),
        " -D server --local-copy".to_string(),
    ] {
        assert!(started.contains(&word), "{word:?} missing: {started}");
    }
    // Its own log lines come back prefixed, from its own pid.
    let serving = stderr
        .lines()
        .find(|l| l.starts_with("LOCATION2: ") && l.contains("serving "))
        .unwrap_or_else(|| panic!("no 'LOCATION2: ... serving' line:\n{stderr}"));
    assert!(serving.contains(&dst.location()), "{serving}");
    assert_eq!(
        number_after(serving, "pid"),
        Some(child as u64),
        "{serving}"
    );
    // Each side took its own store's lock.
    assert_eq!(lock_holder(&src.root), pid);
    assert_eq!(lock_holder(&dst.root), child);
    // Both sides' peak memory, for benchmarks.
    let peak = stderr
        .lines()
        .find(|l| l.contains("peak resident size"))
        .unwrap_or_else(|| panic!("no 'peak resident size' line:\n{stderr}"));
    assert!(
        number_after(peak, "the LOCATION2 side").is_some_and(|kb| kb > 0),
        "{peak}"
    );
}

#[test]
fn config_file_and_overrides_reach_the_local_side() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 302, 4);
    let dst = Maildir::at(t.path().join("dest"));
    dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &dst.location()],
    )
    .expect_ok();

    // Another run holds LOCATION2's lock. Only LOCATION2's side waits for
    // it, 60 s unless dsync_lock_timeout says otherwise.
    let held = fs::File::options()
        .read(true)
        .write(true)
        .open(dst.root.join("dsync.lock"))
        .unwrap();
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let dst_location = dst.location();
    let fails_fast = |args: &[&str]| {
        let start = Instant::now();
        let mut all = args.to_vec();
        all.extend(["backup", dst_location.as_str()]);
        let r = dsync(t.path(), Some(&src.location()), &all);
        r.expect_code(1)
            .expect_stderr_contains("LOCATION2")
            .expect_stderr_contains("another dsync");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "LOCATION2's side waited {:?}: the setting did not reach it",
            start.elapsed()
        );
    };
    // Through -o.
    fails_fast(&["-o", "dsync_lock_timeout=1"]);
    // Through the config file (-c), which `dsync()` writes.
    let conf = t.path().join("own.conf");
    fs::write(
        &conf,
        format!(
            "mail_location = {}\ndsync_lock_timeout = 1\nnamespace inbox {{\n  inbox = yes\n  separator = /\n}}\n",
            src.location()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let r = common::run::dsync_raw(
        t.path(),
        &[
            "-c".into(),
            conf.display().to_string(),
            "backup".into(),
            dst.location(),
        ],
    );
    r.expect_code(1).expect_stderr_contains("another dsync");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn local_side_expands_location2_and_its_parameters_as_the_leader_does() {
    require_dovecot!();
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 303, 5);
    // `~` and `%u` in the root, and LAYOUT=fs: the child must open
    // exactly this store.
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let loc2 = "maildir:~/dest-%u:LAYOUT=fs";
    dsync(t.path(), Some(&src.location()), &["mirror", loc2]).expect_ok();
    let root = t.path().join(format!("dest-{user}"));
    assert!(root.join("Archive/2024/cur").is_dir(), "not LAYOUT=fs");
    let expanded = format!("maildir:{}:LAYOUT=fs", root.display());
    assert_same(&snapshot(&src.location()), &snapshot(&expanded));
    // A second run finds it as the first left it.
    dsync(t.path(), Some(&src.location()), &["mirror", loc2]).expect_ok();

    // A CONTROL= directory, expanded the same way, holds the UID lists.
    let loc3 = "maildir:~/other-%u:CONTROL=~/control-%u";
    dsync(t.path(), Some(&src.location()), &["mirror", loc3]).expect_ok();
    let control = t.path().join(format!("control-{user}"));
    assert!(
        control.join(".INBOX/dovecot-uidlist").is_file(),
        "CONTROL= not used"
    );
    assert!(!t
        .path()
        .join(format!("other-{user}/dovecot-uidlist"))
        .exists());
    // Dovecot finds the same mail there, UIDs and POP3 UIDLs included.
    let expanded = format!(
        "maildir:{}:CONTROL={}",
        t.path().join(format!("other-{user}")).display(),
        control.display()
    );
    assert_same(&snapshot(&src.location()), &snapshot(&expanded));
}

/// Both sides read the config and parse LOCATION2: each warning is said
/// once, about LOCATION2 by its side (prefixed), about the config by the
/// leader.
#[test]
fn warnings_come_once() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 306, 3);
    let conf = t.path().join("own.conf");
    fs::write(
        &conf,
        format!(
            "mail_location = {}\ndsync_io_timeout = 600#glued\n",
            src.location()
        ),
    )
    .unwrap();
    let loc2 = format!(
        "maildir:{}:NO_SUCH_PARAM=1",
        t.path().join("dest").display()
    );
    let r = common::run::dsync_raw(
        t.path(),
        &[
            "-c".into(),
            conf.display().to_string(),
            "mirror".into(),
            loc2,
        ],
    );
    r.expect_ok();
    let lines =
        |needle: &str| -> Vec<&str> { r.stderr.lines().filter(|l| l.contains(needle)).collect() };
    let about_loc2 = lines("unknown parameter \"NO_SUCH_PARAM\"");
    assert_eq!(about_loc2.len(), 1, "{}", r.stderr);
    assert!(about_loc2[0].starts_with("LOCATION2: "), "{}", r.stderr);
    let about_config = lines("glued to a word");
    assert_eq!(about_config.len(), 1, "{}", r.stderr);
    assert!(!about_config[0].starts_with("LOCATION2: "), "{}", r.stderr);
}

#[test]
fn a_killed_leader_does_not_leave_the_local_side_running() {
    let t = tempdir();
    let mail = t.path().join("mail");
    fs::create_dir(&mail).unwrap();
    killed_leader(t.path(), &mail, &[]);
}

/// The same with `-u` as root: the child switches to the user itself,
/// which makes the kernel forget its parent-death signal unless it is set
/// again.
#[test]
fn a_killed_leader_with_dash_u_does_not_leave_the_local_side_running() {
    if !root_for("a_killed_leader_with_dash_u_does_not_leave_the_local_side_running") {
        return;
    }
    let (uid, gid) = ensure_test_user();
    let t = tempdir();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mail = t.path().join("mail");
    fs::create_dir(&mail).unwrap();
    std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).unwrap();
    killed_leader(t.path(), &mail, &["-u", TEST_USER]);
}

/// Kills a mirror's leader while LOCATION2's side waits for its next
/// command, stopped (SIGSTOP) so that only the kernel's parent-death
/// signal can end it: it must be gone at once, its lock free, and a rerun
/// must converge. The mail lives in `mail` (the user's with `-u`).
fn killed_leader(t: &Path, mail: &Path, extra: &[&str]) {
    let src = typical_maildir(&mail.join("src"), 304, 6);
    let dst = Maildir::at(mail.join("dest"));
    let conf = write_config(t, Some(&src.location()));
    let chown = |p: &Path| {
        if let Some(m) = fs::metadata(mail).ok().filter(|m| m.uid() != 0) {
            chown_tree(p, m.uid(), m.gid());
        }
    };
    chown(mail);
    let mirror = |pause: Option<&Path>| {
        let mut c = Command::new(binary());
        c.arg("-c")
            .arg(&conf)
            .args(extra)
            .args(["mirror", &dst.location()])
            .current_dir(t)
            .env("HOME", t)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = pause {
            c.env("DSYNC_TEST_PAUSE", p);
        }
        c.spawn().unwrap()
    };
    let out = mirror(None).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    src.inbox()
        .put(&Msg::new(Gen::new(7).message(900, Eol::Lf)).flags("S"));
    chown(mail);

    // The leader stops after reading both sides (the test hook), with
    // LOCATION2's side waiting for its next command.
    let pause = mail.join("paused");
    let mut leader = mirror(Some(&pause));
    let start = Instant::now();
    while !pause.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        if let Some(s) = leader.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(leader.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the leader ended ({s}) before pausing:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let child = lock_holder(&dst.root);
    assert_ne!(child, leader.id());
    unsafe { libc::kill(child as i32, libc::SIGSTOP) };
    leader.kill().unwrap();
    leader.wait().unwrap();

    // Gone, and its lock free: its last threads may still be closing
    // files when the process already shows as a zombie.
    let lock = fs::File::open(dst.root.join("dsync.lock")).unwrap();
    let free = || unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    let start = Instant::now();
    while running(child) || !free() {
        if start.elapsed() > Duration::from_secs(10) {
            unsafe { libc::kill(child as i32, libc::SIGKILL) };
            panic!("LOCATION2's side (pid {child}) outlived its killed leader, or its lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(lock);
    fs::remove_file(&pause).ok();
    // Nothing half-done: a rerun converges.
    let out = mirror(None).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when running as root; otherwise says the test is skipped (CI runs
/// as root, so there it fails instead).
fn root_for(test: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("SKIPPING {test}: needs root");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the tests as root"
    );
    false
}

/// True while `pid` runs (a zombie waiting for its reaper has ended).
fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name in parentheses.
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

fn chown_tree(root: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success());
}

/// As root with `-u`, LOCATION2's side starts as root and switches to the
/// user itself, like a remote `dsync -u USER server`: a config file only
/// root may read and a binary in a directory only root may enter (root's
/// cargo bin) work for it as they do for the leader.
#[test]
fn dash_u_as_root_runs_the_local_side_as_that_user() {
    if !root_for("dash_u_as_root_runs_the_local_side_as_that_user") {
        return;
    }
    let (uid, gid) = ensure_test_user();
    let t = tempdir();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let private = t.path().join("root-only");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let exe: PathBuf = private.join("dsync");
    fs::copy(binary(), &exe).unwrap();

    let mail = t.path().join("mail");
    fs::create_dir(&mail).unwrap();
    let src = typical_maildir(&mail.join("src"), 305, 5);
    chown_tree(&mail, uid, gid);
    let dst = Maildir::at(mail.join("dest"));
    let conf = write_config(&private, Some(&src.location()));
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(&exe)
        .arg("-c")
        .arg(&conf)
        .args(["-u", TEST_USER, "-D", "mirror", &dst.location()])
        .current_dir(t.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("as {TEST_USER} (uid {uid}")),
        "LOCATION2's side does not say it runs as {TEST_USER}:\n{stderr}"
    );
    // Everything LOCATION2's side wrote belongs to the user.
    let mut owners = std::collections::BTreeSet::new();
    walk(&dst.root, &mut |_, m| {
        owners.insert(m.uid());
        Ok(())
    })
    .unwrap();
    assert_eq!(owners.into_iter().collect::<Vec<_>>(), vec![uid]);
    assert_eq!(message_files(&src.root), message_files(&dst.root));
}

/// How many message files a Maildir tree holds.
fn message_files(root: &Path) -> usize {
    let mut n = 0;
    walk(root, &mut |p, m| {
        let dir = p.parent().and_then(Path::file_name);
        if m.is_file() && (dir == Some("cur".as_ref()) || dir == Some("new".as_ref())) {
            n += 1;
        }
        Ok(())
    })
    .unwrap();
    n
}

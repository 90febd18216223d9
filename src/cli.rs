//! The command line: `dsync [options] mirror|backup LOCATION2`, and
//! `dsync [options] server` for the remote side.

use crate::brain::backup::{self, Direction, LocalOpener};
use crate::brain::mirror::{self, MirrorOptions};
use crate::brain::plan::Filter;
use crate::brain::remote::Remote;
use crate::config::{self, Config};
use crate::location::{self, Expand, Location2, MailLocation};
use crate::maildir::{IndexDir, Layout, MaildirOptions, MaildirStore};
use crate::mbox::{MboxOptions, MboxStore};
use crate::model::MailboxName;
use crate::protocol;
use crate::server::{self, ServerOptions, StoreOpener};
use crate::store::Store;
use crate::transport::Spawn;
use crate::{lock, transport, user};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

/// Exit code for usage errors (sysexits' EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the sync succeeded but some changes could not be made.
pub const EXIT_INCOMPLETE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "dsync",
    version,
    about = "Mailbox synchronization: mirror or back up one user's mail between two locations",
    after_help = "LOCATION2 is a mail location (maildir:~/Backup), host or user@host (ssh), \
                  or a whole command line that starts a remote `dsync server`.\n\
                  Exit codes: 0 synced; 2 synced but some changes could not be made (run again); \
                  1 failed; 64 usage error."
)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Default, Clone)]
struct Opts {
    /// Read the configuration from FILE (default: /etc/dovecot/dovecot.conf)
    #[arg(short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace characters that a mailbox name cannot hold on the other side with CHAR
    #[arg(short = 'C', value_name = "CHAR")]
    alt_char: Option<char>,
    /// Debug messages
    #[arg(short = 'D')]
    debug: bool,
    /// Full sync: compare every mailbox even if its state looks unchanged
    #[arg(short = 'f')]
    full: bool,
    /// Sync only this mailbox (repeatable)
    #[arg(short = 'm', value_name = "MAILBOX")]
    mailboxes: Vec<String>,
    /// Override a configuration setting (repeatable)
    #[arg(short = 'o', value_name = "SETTING=VALUE")]
    overrides: Vec<String>,
    /// Reverse the backup direction: LOCATION2 is backed up to the local location
    #[arg(short = 'R')]
    reverse: bool,
    /// Sync this user's mail (looked up in the system's user database)
    #[arg(short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Verbose messages
    #[arg(short = 'v')]
    verbose: bool,
}

impl Opts {
    /// Options may come before or after the command word; merge both.
    fn merge(mut self, o: Opts) -> Opts {
        self.config = o.config.or(self.config);
        self.alt_char = o.alt_char.or(self.alt_char);
        self.debug |= o.debug;
        self.full |= o.full;
        self.mailboxes.extend(o.mailboxes);
        self.overrides.extend(o.overrides);
        self.reverse |= o.reverse;
        self.user = o.user.or(self.user);
        self.verbose |= o.verbose;
        self
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Two-way synchronization: changes on either side are merged
    Mirror {
        #[command(flatten)]
        opts: Opts,
        #[arg(value_name = "LOCATION2", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        location2: Vec<String>,
    },
    /// One-way: make LOCATION2 an exact copy (or, with -R, the local location a copy of LOCATION2)
    Backup {
        #[command(flatten)]
        opts: Opts,
        #[arg(value_name = "LOCATION2", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        location2: Vec<String>,
    },
    /// Serve the protocol on stdin/stdout (started by the other side over ssh)
    Server {
        #[command(flatten)]
        opts: Opts,
        /// Offer the leader to copy message files straight from its paths,
        /// and leave warnings about the config it shares to it. Only for a
        /// follower on the leader's machine, which the leader starts with
        /// it for a local LOCATION2; never over ssh.
        #[arg(long = "local-copy", hide = true)]
        local_copy: bool,
    },
}

/// Parses the command line, runs, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                _ => {
                    let _ = e.print();
                    EXIT_USAGE
                }
            };
        }
    };
    let (opts, job) = match cli.command {
        Cmd::Mirror { opts, location2 } => (cli.opts.merge(opts), Job::Mirror(location2)),
        Cmd::Backup { opts, location2 } => (cli.opts.merge(opts), Job::Backup(location2)),
        Cmd::Server { opts, local_copy } => (cli.opts.merge(opts), Job::Server { local_copy }),
    };
    init_logging(&opts);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dsync: error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let role = if matches!(job, Job::Server { .. }) {
        "dsync server"
    } else {
        "dsync"
    };
    match runtime.block_on(run(opts, job)) {
        Ok(code) => code,
        Err(e) if changed_meanwhile(&e) => {
            eprintln!(
                "{role}: {e:#}\n{role}: the mail changed while dsync was working on it; nothing is lost, and running dsync again will finish the job"
            );
            EXIT_INCOMPLETE
        }
        Err(e) => {
            eprintln!("{role}: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                EXIT_USAGE
            } else {
                1
            }
        }
    }
}

/// True for failures that running again fixes: the mail changed under a
/// store during the run, on this side or (reported as `temp`) the other.
fn changed_meanwhile(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<crate::maildir::ChangedMeanwhile>()
            || c.downcast_ref::<crate::brain::remote::RemoteError>()
                .is_some_and(|r| r.kind == crate::protocol::ErrorKind::Temp)
    })
}

enum Job {
    Mirror(Vec<String>),
    Backup(Vec<String>),
    Server { local_copy: bool },
}

/// A mistake in the command line found after parsing (bad `-o`, say).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn init_logging(opts: &Opts) {
    let level = if opts.debug {
        tracing::Level::DEBUG
    } else if opts.verbose {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in logs.
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false);
    // Debug output is for finding where a run spends its time: seconds
    // since start. Otherwise the caller's logger adds its own times.
    let _ = if opts.debug {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init()
    } else {
        fmt.without_time().try_init()
    };
}

/// Settings and the user every job starts from.
struct Setup {
    config: Config,
    user: user::User,
}

/// Reads the settings, finds the user and (with `-u`) becomes that user.
fn setup(opts: &Opts) -> Result<Setup> {
    let s = setup_as_invoked(opts)?;
    switch_user(opts, &s.user)?;
    Ok(s)
}

/// [`setup`] without the switch to the `-u` user.
fn setup_as_invoked(opts: &Opts) -> Result<Setup> {
    let mut overrides = Vec::new();
    for o in &opts.overrides {
        overrides
            .push(config::parse_override(o).map_err(|e| UsageError(format!("-o {o}: {e:#}")))?);
    }
    if let Some(c) = opts.alt_char {
        overrides.push(("dsync_alt_char".to_string(), c.to_string()));
    }
    let config = Config::load(opts.config.as_deref(), &overrides)?;
    let user = match &opts.user {
        Some(name) => user::lookup(name)?,
        None => user::current()?,
    };
    Ok(Setup { config, user })
}

/// With `-u`: as root, act as the mail's owner so nothing we write ends up
/// owned by root (Dovecot would then fail to touch it).
fn switch_user(opts: &Opts, user: &user::User) -> Result<()> {
    if opts.user.is_some() {
        user::become_user(user)?;
    }
    Ok(())
}

/// A duration setting in seconds ("30" or "30s"), or `default`.
fn seconds_setting(config: &Config, key: &str, default: u64) -> Duration {
    let secs = config
        .get(key)
        .and_then(|s| s.trim_end_matches('s').parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

fn io_timeout(config: &Config) -> Duration {
    seconds_setting(config, "dsync_io_timeout", 600)
}

async fn run(opts: Opts, job: Job) -> Result<i32> {
    match job {
        Job::Server { local_copy } => serve_stdio(&opts, local_copy).await,
        Job::Backup(location2) => sync(&opts, &location2, Mode::Backup).await,
        Job::Mirror(location2) => sync(&opts, &location2, Mode::Mirror).await,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Backup,
    Mirror,
}

fn maildir_options(m: &location::MaildirLocation, config: &Config) -> MaildirOptions {
    MaildirOptions {
        root: m.root.clone(),
        layout: match m.layout {
            location::MaildirLayout::Maildirpp => Layout::MaildirPlusPlus,
            location::MaildirLayout::Fs => Layout::Fs,
        },
        inbox: m.inbox.clone(),
        control: m.control.clone(),
        index: match &m.index {
            location::IndexLocation::Default => IndexDir::Default,
            location::IndexLocation::Memory => IndexDir::Memory,
            location::IndexLocation::Path(p) => IndexDir::Path(p.clone()),
        },
        alt_char: config.alt_char(),
    }
}

/// Opens a mail location as a store; `create` makes a missing one.
fn open_store(loc: &MailLocation, config: &Config, create: bool) -> Result<Store> {
    match loc {
        MailLocation::Maildir(m) => {
            MaildirStore::open(maildir_options(m, config), create).map(Store::from)
        }
        MailLocation::Mbox(m) => {
            MboxStore::open(MboxOptions::from_location(m, config.alt_char()), create)
                .map(Store::from)
        }
    }
}

/// Opens a store and takes its run lock, so two runs never work on the
/// same mail at once.
fn open_locked(
    loc: &MailLocation,
    config: &Config,
    create: bool,
) -> Result<(Store, lock::StoreLock)> {
    let store = open_store(loc, config, create)?;
    let wait = seconds_setting(config, "dsync_lock_timeout", 60);
    let dir = store.lock_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    let lock = lock::acquire(&dir, wait)?;
    Ok((store, lock))
}

fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

async fn sync(opts: &Opts, location2: &[String], mode: Mode) -> Result<i32> {
    let Setup { config, user } = setup_as_invoked(opts)?;
    let ex = Expand {
        user: &user.name,
        home: &user.home,
    };
    // Quietly: what parsing a local location warns about (an unknown
    // parameter) its own side says again when it parses it, prefixed.
    let loc2 =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            location::parse_location2(location2, &ex)
        })
        .map_err(|e| UsageError(format!("LOCATION2: {e:#}")))?;
    // A local LOCATION2's side starts as we were started (root, with -u)
    // and switches to the user itself, as a remote `dsync -u USER server`
    // does: it reads the same config files (often readable by root only)
    // and runs the same binary (perhaps in a directory only root enters).
    let local_side = match loc2 {
        // A local location is one word (several are a command line).
        Location2::Local(_) => Some(start_local_side(opts, &location2[0])?),
        _ => None,
    };
    switch_user(opts, &user)?;
    let loc1 = location::parse_mail_location(config.mail_location(), &ex)
        .with_context(|| format!("mail_location {:?}", config.mail_location()))?;
    let sep = config.inbox_namespace().separator;
    let mut names = Vec::new();
    for m in &opts.mailboxes {
        names.push(
            MailboxName::parse(m, sep)
                .ok_or_else(|| UsageError(format!("-m {m:?}: not a valid mailbox name")))?,
        );
    }
    let filter = Filter(names);
    let dir = if opts.reverse {
        Direction::Pull
    } else {
        Direction::Push
    };
    let timeout = io_timeout(&config);
    if let (MailLocation::Maildir(a), Location2::Local(MailLocation::Maildir(b))) = (&loc1, &loc2) {
        if same_path(&a.root, &b.root) {
            return Err(UsageError(format!(
                "LOCATION2 {} is the mail location itself; give another location",
                b.root.display()
            ))
            .into());
        }
    }
    let mut local_lock = None;
    let local = {
        let (config, loc1, lock, full) = (&config, &loc1, &mut local_lock, opts.full);
        Box::new(move |create: bool| {
            let (mut store, l) = open_locked(loc1, config, create)
                .with_context(|| format!("opening the mail location {}", config.mail_location()))?;
            store.set_full_scan(full);
            *lock = Some(l);
            Ok(store)
        }) as LocalOpener<'_>
    };

    let is_local = local_side.is_some();
    let (peer, mut t) = match (loc2, local_side) {
        (_, Some(t)) => ("LOCATION2".to_string(), t),
        (Location2::Local(_), None) => unreachable!("a local LOCATION2's side was started"),
        (Location2::Ssh { user: ruser, host }, None) => {
            let argv = remote_command(&config, &host, ruser.as_deref())?;
            tracing::debug!("starting the remote side: {}", argv.join(" "));
            let t = transport::spawn(Spawn {
                argv: &argv,
                prefix: &format!("{host}: "),
                name: "the remote side",
                die_with_parent: false,
            })?;
            (format!("remote dsync on {host}"), t)
        }
        (Location2::Command(mut argv), None) => {
            if argv.last().map(String::as_str) != Some("server") {
                argv.push("server".to_string());
            }
            tracing::debug!("starting the remote side: {}", argv.join(" "));
            let t = transport::spawn(Spawn {
                argv: &argv,
                prefix: "remote: ",
                name: "the remote side",
                die_with_parent: false,
            })?;
            (format!("remote dsync ({})", argv.join(" ")), t)
        }
    };
    let read = std::mem::replace(&mut t.read, Box::new(tokio::io::empty()));
    let write = std::mem::replace(&mut t.write, Box::new(tokio::io::sink()));
    let (read, write, traffic) = transport::counted(read, write);
    let (tx, rx) = protocol::connect(read, write, &peer, timeout);
    // Like Dovecot's dsync, the follower takes the leader's alt_char.
    let mut features = vec![format!(
        "{}{}",
        protocol::FEATURE_ALT_CHAR,
        config.alt_char()
    )];
    if opts.full {
        features.push(protocol::FEATURE_FULL_SCAN.to_string());
    }
    let mut remote = match Remote::handshake(tx, rx, features).await {
        Ok(r) => r,
        Err(e) => {
            // What the other side printed says why far better than the
            // closed stream does (`bash: dsync: command not found`,
            // `Permission denied (publickey)`). A side that could not
            // start exits at once (ssh right after its message); one that
            // is silent or talks nonsense is not waited for long.
            let how = t.outcome(Duration::from_secs(2)).await;
            return Err(if is_local {
                local_start_error(e, &how, &t)
            } else if how.failed {
                anyhow::anyhow!("the remote side could not start: `{}` {how}", t.command())
            } else if !how.stderr.is_empty() {
                anyhow::anyhow!("{e:#} (the remote side printed: {})", how.stderr)
            } else {
                e
            });
        }
    };
    t.started();
    let job = match mode {
        Mode::Backup => LeadJob::Backup(dir, filter),
        Mode::Mirror => LeadJob::Mirror(MirrorOptions {
            filter,
            allow_mass_delete: config
                .get("dsync_allow_mass_delete")
                .is_some_and(|v| v == "yes"),
            full: opts.full,
        }),
    };
    let result = async {
        let report = match &job {
            LeadJob::Backup(dir, filter) => {
                backup::run(local, &mut remote, *dir, filter, opts.full).await?
            }
            LeadJob::Mirror(opts) => mirror::run(local, &mut remote, opts).await?,
        };
        remote.quit().await?;
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    // Did the other side end by itself (ssh killed, a crash)? Then that
    // is the cause and worth saying; asked before we hang up, which would
    // end it anyway. One that answered with an error is still there.
    let other_ended = match &result {
        Err(e) if !answered(e) => {
            let ended = t.ended_within(Duration::from_millis(500)).await;
            t.quiet();
            ended
        }
        Err(_) => {
            t.quiet();
            None
        }
        Ok(_) => None,
    };
    drop(remote);
    tracing::info!(
        "traffic with {peer}: sent {} bytes, received {} bytes",
        traffic.sent(),
        traffic.received()
    );
    drop(local_lock);
    let name = t.name().to_string();
    if let Err(e) = result {
        let e = match other_ended {
            Some(how) => e.context(format!("{name} `{}` {how}", t.command())),
            None => e,
        };
        // We hung up, which ends it at its next read: let it finish what
        // it is writing rather than kill it in the middle.
        t.wait(Duration::from_secs(2)).await;
        return Err(e);
    }
    if t.wait(Duration::from_secs(10)).await && is_local {
        log_peak_memory(&name);
    }
    let report = result?;
    tracing::info!(
        "done: {} copied, {} expunged, {} updated",
        report.copied,
        report.expunged,
        report.updated
    );
    if !report.incomplete.is_empty() {
        eprintln!(
            "dsync: {} change(s) could not be made because the mail changed during the run; running dsync again will finish the job",
            report.incomplete.len()
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(0)
}

/// True if the other side reported the failure itself (so it is running).
fn answered(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.is::<crate::brain::remote::RemoteError>())
}

/// Starts a local LOCATION2's side: this same program as `dsync server`,
/// a process of its own like a remote side (its own memory and core, its
/// own lock on its store), on the leader's machine, so it also offers to
/// copy files straight from the leader's paths (`--local-copy`).
///
/// It gets every option that decides which store it opens and how (the
/// config file, each `-o`, `-C`, the user, the log level), and LOCATION2,
/// exactly as given, as its `mail_location`: it expands `%u`, `~` and the
/// location's parameters as we do, for the same user and in the same
/// directory, so it opens the store we mean.
fn start_local_side(opts: &Opts, location2: &str) -> Result<transport::ChildTransport> {
    let exe = std::env::current_exe()
        .context("cannot find this program's own file to run the LOCATION2 side")?;
    let argv = local_side_argv(&exe, opts, location2);
    let t = transport::spawn(Spawn {
        argv: &argv,
        prefix: "LOCATION2: ",
        name: "the LOCATION2 side",
        die_with_parent: true,
    })?;
    tracing::debug!(
        "started the LOCATION2 side (pid {}): {}",
        t.id().map_or("?".to_string(), |p| p.to_string()),
        t.command()
    );
    Ok(t)
}

/// The command line of [`start_local_side`]: `EXE [-c FILE] [-o SETTING]...
/// [-C CHAR] [-u USER] [-D] [-v] -o mail_location=LOCATION2 server
/// --local-copy`.
fn local_side_argv(exe: &std::path::Path, opts: &Opts, location2: &str) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![exe.into()];
    let mut opt = |flag: &str, value: &OsStr| {
        // `-o -x` reads as two options; `-o-x` cannot.
        if value.as_encoded_bytes().starts_with(b"-") {
            let mut w = OsString::from(flag);
            w.push(value);
            argv.push(w);
        } else {
            argv.push(flag.into());
            argv.push(value.into());
        }
    };
    if let Some(c) = &opts.config {
        opt("-c", c.as_os_str());
    }
    for o in &opts.overrides {
        opt("-o", o.as_ref());
    }
    if let Some(c) = opts.alt_char {
        opt("-C", c.to_string().as_ref());
    }
    if let Some(u) = &opts.user {
        opt("-u", u.as_ref());
    }
    // The last `-o` of a setting wins: this one over any given above.
    opt("-o", format!("mail_location={location2}").as_ref());
    if opts.debug {
        argv.push("-D".into());
    }
    if opts.verbose {
        argv.push("-v".into());
    }
    argv.push("server".into());
    argv.push("--local-copy".into());
    argv
}

/// Why a local LOCATION2's side did not start: what it said, which is
/// about LOCATION2 (it reads the same config as we did, so its own
/// failures are with that location).
fn local_start_error(
    e: anyhow::Error,
    how: &transport::Outcome,
    t: &transport::ChildTransport,
) -> anyhow::Error {
    // Without its "dsync server: error:", which ours would repeat.
    let said = how
        .stderr
        .strip_prefix("dsync server: error: ")
        .unwrap_or(&how.stderr);
    match (said.is_empty(), how.failed) {
        (false, _) => anyhow::anyhow!(
            "LOCATION2: {said} ({} `{}` {})",
            t.name(),
            t.command(),
            how.status
        ),
        (true, true) => anyhow::anyhow!("LOCATION2: {} `{}` {}", t.name(), t.command(), how.status),
        (true, false) => e.context("LOCATION2"),
    }
}

/// With -D, after the LOCATION2 side exited: each side's peak resident
/// size (GNU time's %M shows only the larger one).
fn log_peak_memory(other: &str) {
    let peak_kb = |who: libc::c_int| {
        // SAFETY: getrusage only fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(who, &mut ru) };
        // Linux counts ru_maxrss in kilobytes.
        (rc == 0).then_some(ru.ru_maxrss)
    };
    if let (Some(me), Some(child)) = (peak_kb(libc::RUSAGE_SELF), peak_kb(libc::RUSAGE_CHILDREN)) {
        // At -v: an administrator sizing a big migration wants it, and the
        // benchmark reads it to report each side.
        tracing::info!("peak resident size: this side {me} KB, {other} {child} KB");
    }
}

/// The command line that starts the remote side for `host`/`user@host`,
/// from the `dsync_remote_cmd` setting. Variables: `%{host}`, `%{user}`
/// (the `user@` part; words `-u %{user}` are dropped when there is none).
fn remote_command(config: &Config, host: &str, user: Option<&str>) -> Result<Vec<String>> {
    let template = config
        .get("dsync_remote_cmd")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("ssh %{host} dsync -u %{user} server");
    let words = split_command(template)?;
    let mut argv = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if user.is_none() && w == "-u" && words.get(i + 1).is_some_and(|n| n.contains("%{user}")) {
            i += 2;
            continue;
        }
        if user.is_none() && w.contains("%{user}") {
            bail!(
                "dsync_remote_cmd uses %{{user}} but LOCATION2 names no user (write user@{host})"
            );
        }
        argv.push(
            w.replace("%{host}", host)
                .replace("%{user}", user.unwrap_or("")),
        );
        i += 1;
    }
    Ok(argv)
}

/// Splits a command template into words: whitespace separates, single and
/// double quotes group, backslash escapes the next character.
fn split_command(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\\') | (Some('"'), '\\') => {
                let next = chars
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("dsync_remote_cmd ends with a backslash"))?;
                cur.get_or_insert_with(String::new).push(next);
            }
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'') | (None, '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        bail!("dsync_remote_cmd has an unterminated quote: {s}");
    }
    words.extend(cur);
    Ok(words)
}

enum LeadJob {
    Backup(Direction, Filter),
    Mirror(MirrorOptions),
}

async fn serve_stdio(opts: &Opts, local_copy: bool) -> Result<i32> {
    // Started by a leader on this machine (`--local-copy`), we read the
    // config it read and it has said what is wrong with it: quietly here.
    let Setup { config, user } = if local_copy {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            setup(opts)
        })?
    } else {
        setup(opts)?
    };
    let ex = Expand {
        user: &user.name,
        home: &user.home,
    };
    let loc = location::parse_mail_location(config.mail_location(), &ex)
        .with_context(|| format!("mail_location {:?}", config.mail_location()))?;
    // Shown on the leader's side with -D: which store and identity the
    // remote ended up with is the first question when a remote run surprises.
    tracing::debug!(
        "serving {} as {} (uid {}, pid {})",
        config.mail_location(),
        user.name,
        unsafe { libc::geteuid() },
        std::process::id()
    );
    let timeout = io_timeout(&config);
    let batch_commits = matches!(loc, MailLocation::Maildir(_));
    let opener: StoreOpener = Box::new(move |create| open_locked(&loc, &config, create));
    server::serve(
        Box::new(tokio::io::stdin()),
        Box::new(tokio::io::stdout()),
        opener,
        ServerOptions {
            local_copy,
            batch_commits,
            timeout,
        },
    )
    .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_side_gets_the_options_that_shape_its_store() {
        let opts = Opts {
            config: Some(PathBuf::from("/etc/dsync test.conf")),
            alt_char: Some('-'),
            debug: true,
            full: true,
            mailboxes: vec!["INBOX".into()],
            overrides: vec!["dsync_lock_timeout=5".into(), "-odd=x".into()],
            reverse: true,
            user: Some("jane".into()),
            verbose: false,
        };
        let argv = local_side_argv(
            std::path::Path::new("/usr/bin/dsync"),
            &opts,
            "maildir:~/B %u:LAYOUT=fs",
        );
        assert_eq!(argv[0], "/usr/bin/dsync");
        assert_eq!(argv[argv.len() - 2..], ["server", "--local-copy"]);
        // What the child's own parser makes of it.
        let cli = Cli::try_parse_from(&argv).unwrap();
        let Cmd::Server {
            opts: after,
            local_copy,
        } = cli.command
        else {
            panic!("not a server command line: {argv:?}");
        };
        let got = cli.opts.merge(after);
        assert!(local_copy);
        assert_eq!(got.config, opts.config);
        assert_eq!(got.alt_char, Some('-'));
        assert_eq!(got.user.as_deref(), Some("jane"));
        assert!(got.debug && !got.verbose);
        // The last override wins: LOCATION2 as the mail location.
        assert_eq!(
            got.overrides,
            [
                "dsync_lock_timeout=5",
                "-odd=x",
                "mail_location=maildir:~/B %u:LAYOUT=fs"
            ]
        );
        // The leader's own concerns stay with the leader.
        assert!(got.mailboxes.is_empty() && !got.full && !got.reverse);
    }

    #[tokio::test]
    async fn a_local_side_that_cannot_start_is_reported_as_location2() {
        let argv = [
            "sh",
            "-c",
            "echo 'dsync server: error: cannot read /etc/x.conf: Permission denied' >&2; exit 1",
        ];
        let mut t = transport::spawn(Spawn {
            argv: &argv,
            prefix: "LOCATION2: ",
            name: "the LOCATION2 side",
            die_with_parent: true,
        })
        .unwrap();
        let how = t.outcome(Duration::from_secs(5)).await;
        let e = local_start_error(anyhow::anyhow!("connection closed"), &how, &t);
        assert_eq!(
            format!("{e:#}"),
            format!(
                "LOCATION2: cannot read /etc/x.conf: Permission denied \
                 (the LOCATION2 side `{}` exited with status 1)",
                argv.join(" ")
            )
        );
    }

    #[test]
    fn splits_commands_like_a_shell() {
        assert_eq!(
            split_command(r#"ssh -o "ProxyJump a b" 'x y' c\ d"#).unwrap(),
            vec!["ssh", "-o", "ProxyJump a b", "x y", "c d"]
        );
        assert!(split_command("ssh 'oops").is_err());
    }

    fn config_with(template: Option<&str>) -> Config {
        let mut c = Config::default();
        if let Some(t) = template {
            c.set_override("dsync_remote_cmd", t).unwrap();
        }
        c
    }

    #[test]
    fn remote_command_drops_dash_u_without_a_user() {
        let c = config_with(None);
        assert_eq!(
            remote_command(&c, "mx", Some("jane@example.com")).unwrap(),
            vec!["ssh", "mx", "dsync", "-u", "jane@example.com", "server"]
        );
        assert_eq!(
            remote_command(&c, "mx", None).unwrap(),
            vec!["ssh", "mx", "dsync", "server"]
        );
        let c = config_with(Some(
            "ssh -F '/a b/conf' %{host} dsync -c /r.conf -u %{user} server",
        ));
        assert_eq!(
            remote_command(&c, "h", None).unwrap(),
            vec![
                "ssh",
                "-F",
                "/a b/conf",
                "h",
                "dsync",
                "-c",
                "/r.conf",
                "server"
            ]
        );
        // %{user} anywhere else needs a user.
        let c = config_with(Some("ssh %{user}@%{host} dsync server"));
        let e = remote_command(&c, "h", None).unwrap_err().to_string();
        assert!(e.contains("user@h"), "{e}");
    }
}

use super::*;
use std::fs;

const HOME: &str = "/home/jane";

fn ex() -> Expand<'static> {
    Expand {
        user: "jane@example.com",
        home: Path::new(HOME),
    }
}

fn md(s: &str) -> MaildirLocation {
    match parse_mail_location(s, &ex()).unwrap() {
        MailLocation::Maildir(m) => m,
        other => panic!("expected maildir, got {other:?}"),
    }
}

fn mb(s: &str) -> MboxLocation {
    match parse_mail_location(s, &ex()).unwrap() {
        MailLocation::Mbox(m) => m,
        other => panic!("expected mbox, got {other:?}"),
    }
}

fn err(s: &str) -> String {
    format!("{:#}", parse_mail_location(s, &ex()).unwrap_err())
}

fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|s| s.to_string()).collect()
}

#[test]
fn colon_splitting() {
    assert_eq!(split_colons("a:b:c"), ["a", "b", "c"]);
    assert_eq!(split_colons("a::b:c"), ["a:b", "c"]);
    assert_eq!(split_colons("a:"), ["a"]);
    assert_eq!(split_colons(""), [""]);
    assert_eq!(split_colons("a:::b"), ["a:", "b"]);
    assert_eq!(split_colons("a::::b"), ["a::b"]);
}

#[test]
fn format_prefix() {
    assert_eq!(split_format("maildir:~/M"), Some(("maildir", "~/M")));
    assert_eq!(split_format("mbox:"), Some(("mbox", "")));
    assert_eq!(split_format("host.example.com"), None);
    assert_eq!(split_format("/path:x"), None);
    assert_eq!(split_format(":x"), None);
    assert_eq!(split_format("user@host:x"), None);
    assert_eq!(split_format("plain"), None);
}

#[test]
fn maildir_basic() {
    let m = md("maildir:~/Maildir");
    assert_eq!(m.root, PathBuf::from("/home/jane/Maildir"));
    assert_eq!(m.layout, MaildirLayout::Maildirpp);
    assert_eq!(m.inbox, None);
    assert_eq!(m.control, None);
    assert_eq!(m.index, IndexLocation::Default);
    assert!(!m.utf8);
    assert_eq!(md("MAILDIR:/var/vmail/").root, PathBuf::from("/var/vmail"));
    assert_eq!(md("maildir:~").root, PathBuf::from(HOME));
    assert_eq!(md("maildir:").root, PathBuf::from("/home/jane/Maildir"));
    assert_eq!(
        md("maildir:relative/dir").root,
        PathBuf::from("relative/dir")
    );
}

#[test]
fn maildir_params() {
    let m = md("maildir:~/M:LAYOUT=fs:INBOX=~/M/inbox:CONTROL=/var/control/%u:INDEX=/var/index/%d/%n:UTF-8:DIRNAME=mBoX-MeSsAgEs");
    assert_eq!(m.layout, MaildirLayout::Fs);
    assert_eq!(m.inbox, Some(PathBuf::from("/home/jane/M/inbox")));
    assert_eq!(
        m.control,
        Some(PathBuf::from("/var/control/jane@example.com"))
    );
    assert_eq!(
        m.index,
        IndexLocation::Path(PathBuf::from("/var/index/example.com/jane"))
    );
    assert!(m.utf8);
    assert_eq!(m.dirname.as_deref(), Some("mBoX-MeSsAgEs"));
    assert_eq!(md("maildir:~/M:INDEX=MEMORY").index, IndexLocation::Memory);
    assert!(md("maildir:~/M:UTF8").utf8);
    assert_eq!(
        md("maildir:~/M:LAYOUT=Maildir++").layout,
        MaildirLayout::Maildirpp
    );
    assert_eq!(md("maildir:~/M:LAYOUT=FS").layout, MaildirLayout::Fs);
    assert_eq!(md("maildir:/a::b/c").root, PathBuf::from("/a:b/c"));
    assert_eq!(md("maildir:~/M:").root, PathBuf::from("/home/jane/M"));
}

#[test]
fn maildir_other_params_kept() {
    let m = md("maildir:~/M:ALT=/alt/%n:NO-NOSELECT:FANCY=1");
    assert_eq!(
        m.other,
        vec![
            ("ALT".to_string(), "/alt/jane".to_string()),
            ("NO-NOSELECT".to_string(), String::new()),
            ("FANCY".to_string(), "1".to_string())
        ]
    );
}

#[test]
fn maildir_errors() {
    assert!(err("maildir:~/M:LAYOUT=index").contains("LAYOUT=index is not supported"));
    assert!(err("maildir:INBOX=/x").contains("root directory is missing"));
    assert!(err("maildir:/x/%z").contains("unknown variable \"%z\""));
    assert!(err("").contains("empty mail location"));
}

#[test]
fn mbox_locations() {
    let m = mb("mbox:~/mail:INBOX=/var/mail/%u");
    assert_eq!(m.root, PathBuf::from("/home/jane/mail"));
    assert_eq!(m.inbox, Some(PathBuf::from("/var/mail/jane@example.com")));
    assert_eq!(m.index, IndexLocation::Default);
    let m = mb("mbox:~/mail:INBOX=/var/mail/%n:INDEX=MEMORY:LAYOUT=fs");
    assert_eq!(m.inbox, Some(PathBuf::from("/var/mail/jane")));
    assert_eq!(m.index, IndexLocation::Memory);
    assert!(err("mbox:").contains("mbox needs a root directory"));
    assert!(err("mbox:~/mail:LAYOUT=maildir++").contains("only LAYOUT=fs"));
}

#[test]
fn unsupported_and_unknown_formats() {
    for f in ["sdbox:~/sdbox", "mdbox:~/mdbox", "dbox:~/d", "imapc:"] {
        let e = err(f);
        assert!(e.contains("not supported by dsync"), "{f}: {e}");
    }
    let e = err("localhost:/backup");
    assert!(e.contains("unknown mail format \"localhost\""), "{e}");
}

#[test]
fn variables() {
    let e = ex();
    assert_eq!(
        expand_vars("%u|%n|%d|%h|%%", &e).unwrap(),
        "jane@example.com|jane|example.com|/home/jane|%"
    );
    assert_eq!(
        expand_vars("%{user}|%{username}|%{domain}|%{home}", &e).unwrap(),
        "jane@example.com|jane|example.com|/home/jane"
    );
    assert_eq!(
        expand_vars(
            "%Uu %Ln",
            &Expand {
                user: "Jane",
                home: Path::new("")
            }
        )
        .unwrap(),
        "JANE jane"
    );
    assert_eq!(expand_vars("/%1n/%2n/%n", &e).unwrap(), "/j/ja/jane");
    assert_eq!(expand_vars("%1.2n", &e).unwrap(), "an");
    assert_eq!(expand_vars("%-2.2n", &e).unwrap(), "ne");
    assert_eq!(expand_vars("%-3n", &e).unwrap(), "ane");
    assert_eq!(expand_vars("%99n", &e).unwrap(), "jane");
    assert_eq!(
        expand_vars(
            "%d",
            &Expand {
                user: "bob",
                home: Path::new("")
            }
        )
        .unwrap(),
        ""
    );
    assert_eq!(expand_vars("no vars", &e).unwrap(), "no vars");
    assert!(expand_vars("%", &e).unwrap_err().to_string().contains("%%"));
    assert!(expand_vars("%{user", &e)
        .unwrap_err()
        .to_string()
        .contains("unterminated"));
    assert!(expand_vars("%s", &e)
        .unwrap_err()
        .to_string()
        .contains("unknown variable"));
    assert!(expand_vars("%{env:HOME}", &e)
        .unwrap_err()
        .to_string()
        .contains("unknown variable"));
    assert!(expand_vars(
        "%h",
        &Expand {
            user: "bob",
            home: Path::new("")
        }
    )
    .is_err());
}

#[test]
fn home_expansion() {
    let e = ex();
    assert_eq!(expand_home("~", &e).unwrap(), PathBuf::from(HOME));
    assert_eq!(expand_home("~/", &e).unwrap(), PathBuf::from(HOME));
    assert_eq!(
        expand_home("~/a/b", &e).unwrap(),
        PathBuf::from("/home/jane/a/b")
    );
    assert_eq!(expand_home("/abs/~", &e).unwrap(), PathBuf::from("/abs/~"));
    assert_eq!(
        expand_home("~root/x", &e).unwrap(),
        PathBuf::from("/root/x")
    );
    assert!(
        format!("{:#}", expand_home("~no-such-user-xyz/x", &e).unwrap_err())
            .contains("no system user")
    );
    let no_home = Expand {
        user: "bob",
        home: Path::new(""),
    };
    assert!(expand_home("~/x", &no_home)
        .unwrap_err()
        .to_string()
        .contains("home directory is not known"));
}

#[test]
fn users() {
    let root = User::system("root").unwrap();
    assert!(root.home.is_absolute());
    assert_eq!(root.expand().user, "root");
    assert!(
        format!("{:#}", User::system("no-such-user-xyz").unwrap_err()).contains("no system user")
    );
    let me = User::current().unwrap();
    assert!(!me.name.is_empty());
}

#[test]
fn autodetect_from_disk() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path();
    let e = Expand { user: "u", home };
    let maildir_path = home.join("Maildir");
    fs::create_dir_all(maildir_path.join("cur")).unwrap();
    let loc = parse_mail_location(maildir_path.to_str().unwrap(), &e).unwrap();
    assert!(matches!(loc, MailLocation::Maildir(ref m) if m.root == maildir_path));
    let loc = parse_mail_location("~/Maildir:LAYOUT=fs", &e).unwrap();
    assert!(matches!(loc, MailLocation::Maildir(ref m) if m.layout == MaildirLayout::Fs));
    let loc = parse_mail_location(&format!("auto:{}", maildir_path.display()), &e).unwrap();
    assert!(matches!(loc, MailLocation::Maildir(_)));

    // An mbox file needs ~/mail or ~/Mail for its folders.
    let spool = home.join("spool");
    fs::write(&spool, "From x\n").unwrap();
    let e_msg = format!(
        "{:#}",
        parse_mail_location(spool.to_str().unwrap(), &e).unwrap_err()
    );
    assert!(e_msg.contains("no ~/mail or ~/Mail"), "{e_msg}");
    fs::create_dir(home.join("Mail")).unwrap();
    let loc = parse_mail_location(spool.to_str().unwrap(), &e).unwrap();
    assert_eq!(
        loc,
        MailLocation::Mbox(MboxLocation {
            root: home.join("Mail"),
            inbox: Some(spool.clone()),
            index: IndexLocation::Default,
            control: None,
            utf8: false,
            other: vec![],
        })
    );

    let empty = home.join("empty");
    fs::create_dir(&empty).unwrap();
    let msg = format!(
        "{:#}",
        parse_mail_location(empty.to_str().unwrap(), &e).unwrap_err()
    );
    assert!(
        msg.contains("cannot tell the mailbox format") && msg.contains("maildir:"),
        "{msg}"
    );
    let msg = format!(
        "{:#}",
        parse_mail_location("/does/not/exist", &e).unwrap_err()
    );
    assert!(msg.contains("write maildir:/does/not/exist"), "{msg}");
}

#[test]
fn location2_local() {
    let e = ex();
    assert_eq!(
        parse_location2(&words(&["maildir:~/Backup"]), &e).unwrap(),
        Location2::Local(parse_mail_location("maildir:/home/jane/Backup", &e).unwrap())
    );
    assert!(matches!(
        parse_location2(&words(&["mbox:~/mail:INBOX=/var/mail/%u"]), &e).unwrap(),
        Location2::Local(MailLocation::Mbox(_))
    ));
    let msg = format!(
        "{:#}",
        parse_location2(&words(&["mdbox:~/mdbox"]), &e).unwrap_err()
    );
    assert!(msg.contains("mdbox format is not supported"), "{msg}");
    let msg = format!(
        "{:#}",
        parse_location2(&words(&["sdbox:~/sdbox"]), &e).unwrap_err()
    );
    assert!(msg.contains("not supported"), "{msg}");
}

#[test]
fn location2_ssh() {
    let e = ex();
    let ssh = |u: Option<&str>, h: &str| Location2::Ssh {
        user: u.map(str::to_string),
        host: h.to_string(),
    };
    assert_eq!(
        parse_location2(&words(&["mail.example.com"]), &e).unwrap(),
        ssh(None, "mail.example.com")
    );
    assert_eq!(
        parse_location2(&words(&["bob@mail-2"]), &e).unwrap(),
        ssh(Some("bob"), "mail-2")
    );
    assert_eq!(
        parse_location2(&words(&["jane@example.com@mx1"]), &e).unwrap(),
        ssh(Some("jane@example.com"), "mx1")
    );
    assert_eq!(
        parse_location2(&words(&["[::1]"]), &e).unwrap(),
        ssh(None, "[::1]")
    );
    for bad in ["-oProxyCommand=x", "@host", "user@", "bob@-x", "a\u{7}b"] {
        assert!(
            parse_location2(&words(&[bad]), &e).is_err(),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn location2_ambiguous_local_name() {
    // "Cargo.toml" exists in the crate root, where tests run.
    let msg = format!(
        "{:#}",
        parse_location2(&words(&["Cargo.toml"]), &ex()).unwrap_err()
    );
    assert!(
        msg.contains("ambiguous") && msg.contains("maildir:./Cargo.toml"),
        "{msg}"
    );
}

#[test]
fn location2_commands() {
    let e = ex();
    let cmd = words(&["ssh", "-i", "id_dsa.dovecot", "host", "dsync", "-u", "user"]);
    assert_eq!(
        parse_location2(&cmd, &e).unwrap(),
        Location2::Command(cmd.clone())
    );
    assert_eq!(
        parse_location2(&words(&["ssh mailuser@host dsync -u user"]), &e).unwrap(),
        Location2::Command(words(&["ssh", "mailuser@host", "dsync", "-u", "user"]))
    );
    // An executable file is a command; a directory with cur/ is a Maildir.
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("remote-dsync.sh");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let s = script.to_str().unwrap().to_string();
    assert_eq!(
        parse_location2(std::slice::from_ref(&s), &e).unwrap(),
        Location2::Command(vec![s])
    );
    let md = d.path().join("Maildir");
    fs::create_dir_all(md.join("cur")).unwrap();
    assert!(matches!(
        parse_location2(&[md.to_str().unwrap().to_string()], &e).unwrap(),
        Location2::Local(MailLocation::Maildir(_))
    ));
    // A non-executable file is an mbox INBOX, not a command.
    let plain = d.path().join("not-exec");
    fs::write(&plain, "").unwrap();
    assert!(!matches!(
        parse_location2(&[plain.to_str().unwrap().to_string()], &e),
        Ok(Location2::Command(_))
    ));
}

#[test]
fn location2_errors() {
    let e = ex();
    assert!(parse_location2(&[], &e)
        .unwrap_err()
        .to_string()
        .contains("missing"));
    assert!(parse_location2(&words(&[""]), &e)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(parse_location2(&words(&["  "]), &e).is_err());
    assert!(parse_location2(&words(&["", "x"]), &e).is_err());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mail_location_never_panics(s in "\\PC*") {
            let _ = parse_mail_location(&s, &ex());
        }

        #[test]
        fn location_like_never_panics(s in "(maildir|mbox|auto|x)?:?[~/%a-zA-Z0-9:={}.LU-]{0,40}") {
            let _ = parse_mail_location(&s, &ex());
            let _ = parse_location2(std::slice::from_ref(&s), &ex());
        }

        #[test]
        fn vars_never_panic(s in "[%a-z{}.0-9LU-]{0,30}") {
            let _ = expand_vars(&s, &ex());
        }

        #[test]
        fn maildir_root_round_trip(p in "/[a-zA-Z0-9_.-]{1,20}(/[a-zA-Z0-9_.-]{1,20}){0,3}") {
            let m = md(&format!("maildir:{p}"));
            prop_assert_eq!(m.root, PathBuf::from(&p));
        }
    }
}

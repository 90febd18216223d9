use super::*;
use std::fs;

fn parse(text: &str) -> Config {
    Config::parse_str(text, Path::new("/nonexistent/dovecot.conf")).unwrap()
}

fn parse_err(text: &str) -> String {
    format!(
        "{:#}",
        Config::parse_str(text, Path::new("/etc/dovecot/test.conf")).unwrap_err()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn key_values_and_comments() {
    let c = parse(
        "# comment\n\
         mail_location = maildir:~/Maildir # trailing\n\
         \n\
         a=1\n\
         b =   spaced value  \n\
         q = \"quoted # not comment\"\n\
         s = 'single \\' quote'\n\
         e =\n\
         a = 2\n",
    );
    assert_eq!(c.get("mail_location"), Some("maildir:~/Maildir"));
    assert_eq!(c.get("a"), Some("2"));
    assert_eq!(c.get("b"), Some("spaced value"));
    assert_eq!(c.get("q"), Some("quoted # not comment"));
    assert_eq!(c.get("s"), Some("single ' quote"));
    assert_eq!(c.get("e"), Some(""));
    assert_eq!(c.get("missing"), None);
    // A later assignment replaces the value but keeps one entry.
    assert_eq!(
        c.root().settings().iter().filter(|s| s.key == "a").count(),
        1
    );
}

#[test]
fn variables_kept_and_self_reference_expanded() {
    let c = parse(
        "mail_plugins = acl\n\
         mail_plugins = $mail_plugins quota\n\
         other = $mail_plugins x\n\
         pct = /var/mail/%u/%{home}\n\
         env = $ENV:HOME\n\
         protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n\
         fresh = $fresh y\n",
    );
    assert_eq!(c.root().get("mail_plugins"), Some("acl quota"));
    assert_eq!(c.get("other"), Some("$mail_plugins x"));
    assert_eq!(c.get("pct"), Some("/var/mail/%u/%{home}"));
    assert_eq!(c.get("env"), Some("$ENV:HOME"));
    assert_eq!(
        c.root()
            .section("protocol", "imap")
            .unwrap()
            .get("mail_plugins"),
        Some("acl quota imap_quota")
    );
    assert_eq!(c.get("fresh"), Some("y"));
}

#[test]
fn continuation_lines() {
    let c = parse("a = one \\\n   two\\\n three\nb = x\n");
    assert_eq!(c.get("a"), Some("one two three"));
    assert_eq!(c.get("b"), Some("x"));
    // A blank or comment line ends the continuation.
    let c = parse("a = one \\\n\nb = x\nc = 1 \\\n# note\nd = 2\n");
    assert_eq!(c.get("a"), Some("one"));
    assert_eq!(c.get("b"), Some("x"));
    assert_eq!(c.get("c"), Some("1"));
    assert_eq!(c.get("d"), Some("2"));
    let c = parse("a = dangling \\");
    assert_eq!(c.get("a"), Some("dangling"));
}

#[test]
fn continuation_error_names_first_line() {
    let e = parse_err("a = 1\nfoo \\\n bar\n");
    assert!(e.starts_with("/etc/dovecot/test.conf:2: "), "{e}");
}

#[test]
fn crlf_lines() {
    let c = parse("a = 1\r\nnamespace inbox {\r\n inbox = yes\r\n}\r\n");
    assert_eq!(c.get("a"), Some("1"));
    assert!(c.root().section("namespace", "inbox").is_some());
}

#[test]
fn sections_nest_and_merge() {
    let c = parse(
        "service imap-login {\n\
           inet_listener imap {\n    port = 143\n  }\n\
           inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n\
         }\n\
         namespace inbox {\n  inbox = yes\n}\n\
         plugin {\n  a = 1\n}\n\
         plugin {\n  b = 2\n}\n\
         namespace inbox {\n  mailbox \"Sent Messages\" {\n    special_use = \\Sent\n  }\n}\n",
    );
    let svc = c.root().section("service", "imap-login").unwrap();
    assert_eq!(
        svc.section("inet_listener", "imaps").unwrap().get("port"),
        Some("993")
    );
    assert_eq!(svc.sections().len(), 2);
    let namespaces: Vec<_> = c.root().sections_of("namespace").collect();
    assert_eq!(namespaces.len(), 1, "same-named sections merge");
    let ns = namespaces[0];
    assert_eq!(ns.get("inbox"), Some("yes"));
    assert_eq!(
        ns.section("mailbox", "Sent Messages")
            .unwrap()
            .get("special_use"),
        Some("\\Sent")
    );
    assert_eq!(
        c.root().sections_of("plugin").count(),
        2,
        "unnamed sections stay apart"
    );
    assert_eq!(ns.origin().unwrap().line, 10);
    // Settings inside sections are not top-level settings.
    assert_eq!(c.get("port"), None);
}

#[test]
fn filters_parse() {
    let c = parse(
        "protocol !indexer-worker {\n  x = 1\n}\n\
         local 1.2.3.4 {\n  y = 2\n}\n\
         remote 10.0.0.0/8 {\n  z = 3\n}\n\
         local_name mail.example.com {\n  w = 4\n}\n",
    );
    assert!(c.root().section("protocol", "!indexer-worker").is_some());
    assert!(c.root().section("local", "1.2.3.4").is_some());
    assert!(c.root().section("remote", "10.0.0.0/8").is_some());
    assert!(c.root().section("local_name", "mail.example.com").is_some());
    // The negated filter matches dsync's protocol; address filters never do.
    assert_eq!(c.get("x"), Some("1"));
    assert_eq!(c.get("y"), None);
    assert_eq!(c.get("z"), None);
}

#[test]
fn protocol_filters_for_doveadm() {
    let c = parse(
        "mail_location = maildir:~/Maildir\n\
         protocol imap {\n  mail_location = mbox:~/mail\n}\n\
         protocol !doveadm {\n  mail_location = mbox:~/other\n}\n",
    );
    assert_eq!(c.mail_location(), "maildir:~/Maildir");
    let c = parse(
        "protocol doveadm {\n  mail_location = maildir:~/dsync\n}\n\
         mail_location = maildir:~/Maildir\n",
    );
    assert_eq!(c.mail_location(), "maildir:~/dsync");
}

#[test]
fn syntax_errors_name_file_and_line() {
    assert_eq!(
        parse_err("a = 1\n\nfoo\n"),
        "/etc/dovecot/test.conf:3: expected '=' or '{' after \"foo\""
    );
    assert_eq!(
        parse_err("}\n"),
        "/etc/dovecot/test.conf:1: unexpected '}': no section is open"
    );
    assert_eq!(
        parse_err("a = 1\nnamespace inbox {\n  inbox = yes\n"),
        "/etc/dovecot/test.conf:2: missing '}': section namespace inbox is never closed"
    );
    assert_eq!(
        parse_err("plugin {\n"),
        "/etc/dovecot/test.conf:1: missing '}': section plugin is never closed"
    );
    assert!(
        parse_err("x {\n y z w {\n}\n}\n").starts_with("/etc/dovecot/test.conf:2: expected '{'")
    );
    assert!(
        parse_err("plugin { a = b }\n").starts_with("/etc/dovecot/test.conf:1: garbage after '{'")
    );
    assert!(parse_err("a b c\n")
        .starts_with("/etc/dovecot/test.conf:1: expected '{' after section a b"));
}

#[test]
fn deep_nesting_refused() {
    let text = "a {\n".repeat(100);
    assert!(parse_err(&text).contains("nested more than"));
}

#[test]
fn includes_relative_sorted_and_inline() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "conf.d/20-b.conf", "order = $order b\nb = 1\n");
    write(
        d.path(),
        "conf.d/10-a.conf",
        "order = $order a\n!include ../extra.ext\n",
    );
    write(d.path(), "conf.d/.hidden.conf", "hidden = 1\n");
    write(d.path(), "conf.d/30-c.conf.disabled", "disabled = 1\n");
    write(d.path(), "extra.ext", "extra = yes\n");
    let main = write(
        d.path(),
        "dovecot.conf",
        "order = start\n!include conf.d/*.conf\n!include_try local.conf\n!include_try nowhere/*.conf\norder = $order end\n",
    );
    let c = Config::load(Some(&main), &[]).unwrap();
    assert_eq!(c.get("order"), Some("start a b end"));
    assert_eq!(c.get("extra"), Some("yes"));
    assert_eq!(c.get("b"), Some("1"));
    assert_eq!(c.get("hidden"), None);
    assert_eq!(c.get("disabled"), None);
    assert_eq!(c.source(), Some(main.as_path()));
}

#[test]
fn include_inside_section() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inner.conf", "separator = .\n");
    let main = write(
        d.path(),
        "main.conf",
        "namespace inbox {\n  inbox = yes\n  !include inner.conf\n}\n",
    );
    let c = Config::load(Some(&main), &[]).unwrap();
    assert_eq!(c.inbox_namespace().separator, '.');
}

#[test]
fn include_errors() {
    let d = tempfile::tempdir().unwrap();
    let main = write(d.path(), "main.conf", "a = 1\n!include missing.conf\n");
    let e = format!("{:#}", Config::load(Some(&main), &[]).unwrap_err());
    assert!(
        e.starts_with(&format!(
            "{}:2: cannot open include file {}",
            main.display(),
            d.path().join("missing.conf").display()
        )),
        "{e}"
    );
    let main = write(d.path(), "main2.conf", "!include conf.d/*.conf\n");
    let e = format!("{:#}", Config::load(Some(&main), &[]).unwrap_err());
    assert!(
        e.contains(":1: !include conf.d/*.conf: no file matches"),
        "{e}"
    );

    write(d.path(), "loop-a.conf", "!include loop-b.conf\n");
    write(d.path(), "loop-b.conf", "x = 1\n!include loop-a.conf\n");
    let e = format!(
        "{:#}",
        Config::load(Some(&d.path().join("loop-a.conf")), &[]).unwrap_err()
    );
    assert!(e.contains("loop-b.conf:2: recursive include of"), "{e}");

    // An error inside an included file names that file.
    write(d.path(), "bad.conf", "ok = 1\nbroken\n");
    let main = write(d.path(), "main3.conf", "!include bad.conf\n");
    let e = format!("{:#}", Config::load(Some(&main), &[]).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}:2: expected '=' or '{{' after \"broken\"",
            d.path().join("bad.conf").display()
        )
    );
}

#[test]
fn includes_can_be_disabled() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inc.conf", "x = 1\n");
    let origin = d.path().join("main.conf");
    let text = "!include inc.conf\n!include /definitely/missing\n";
    let c = Config::parse_str_with(
        text,
        &origin,
        ParseOptions {
            follow_includes: false,
        },
    )
    .unwrap();
    assert_eq!(c.get("x"), None);
    let c = Config::parse_str(text.lines().next().unwrap(), &origin).unwrap();
    assert_eq!(c.get("x"), Some("1"));
}

#[test]
fn file_values_read_lazily_and_trimmed() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "secret.txt", "  s3cret\n\n");
    let text = format!(
        "pw = <secret.txt\nabs = < {}\nmissing = </no/such/file\n",
        d.path().join("secret.txt").display()
    );
    let main = write(d.path(), "main.conf", &text);
    let c = Config::load(Some(&main), &[]).unwrap();
    assert_eq!(c.get("pw"), Some("s3cret"));
    assert_eq!(c.get("abs"), Some("s3cret"));
    // An unreadable file does not fail the load, only the lookup.
    assert_eq!(c.get("missing"), None);
    let err = c
        .root()
        .setting("missing")
        .unwrap()
        .value
        .text()
        .unwrap_err();
    assert!(err.contains("/no/such/file"), "{err}");
}

#[test]
fn overrides() {
    assert_eq!(
        parse_override("a=b").unwrap(),
        ("a".to_string(), "b".to_string())
    );
    assert_eq!(
        parse_override("a=b=c").unwrap(),
        ("a".to_string(), "b=c".to_string())
    );
    assert_eq!(
        parse_override("a=").unwrap(),
        ("a".to_string(), String::new())
    );
    assert_eq!(
        parse_override("mail_location=maildir:~/M:LAYOUT=fs")
            .unwrap()
            .1,
        "maildir:~/M:LAYOUT=fs"
    );
    assert!(parse_override("novalue")
        .unwrap_err()
        .to_string()
        .contains("setting=value"));
    assert!(parse_override("=x").is_err());
    assert!(parse_override("a b=x").is_err());
    assert!(parse_override("a//b=x").is_err());

    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "main.conf",
        "mail_location = mbox:~/mail\nprotocol doveadm {\n  x = filtered\n}\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\n",
    );
    let o = |k: &str, v: &str| (k.to_string(), v.to_string());
    let c = Config::load(
        Some(&main),
        &[
            o("mail_location", "maildir:/tmp/M"),
            o("x", "override"),
            o("namespace/inbox/separator", "/"),
            o("namespace/inbox/prefix", "INBOX."),
            o("plugin/quota", "maildir"),
        ],
    )
    .unwrap();
    assert_eq!(c.mail_location(), "maildir:/tmp/M");
    assert_eq!(c.get("x"), Some("override"), "-o beats protocol filters");
    let ns = c.inbox_namespace();
    assert_eq!((ns.separator, ns.prefix.as_str()), ('/', "INBOX."));
    assert_eq!(c.get("namespace/inbox/separator"), Some("/"));
    assert_eq!(c.get("plugin/quota"), Some("maildir"));
    assert!(Config::load(Some(&main), &[o("a/b/c/d", "x")]).is_err());
}

#[test]
fn path_lookup_searches_unnamed_sections() {
    let c = parse("plugin {\n  a = 1\n}\nplugin {\n  b = 2\n  a = 3\n}\nservice x {\n  unix_listener y {\n    mode = 0600\n  }\n}\n");
    assert_eq!(c.get("plugin/a"), Some("3"));
    assert_eq!(c.get("plugin/b"), Some("2"));
    assert_eq!(c.get("plugin/c"), None);
    assert_eq!(c.get("service/x/unix_listener/y/mode"), Some("0600"));
    assert_eq!(c.get("service/x/mode"), None);
    assert_eq!(c.get("a/b/c/d"), None);
}

#[test]
fn where_set_and_inbox_location() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "main.conf",
        "a = 1\nmail_location = mbox:~/mail\nprotocol doveadm {\n  b = 2\n}\nnamespace inbox {\n  inbox = yes\n  location = maildir:~/NS\n}\n",
    );
    let c = Config::load(Some(&main), &[("c".into(), "3".into())]).unwrap();
    assert_eq!(c.where_set("a"), format!("{}:1", main.display()));
    assert_eq!(c.where_set("b"), format!("{}:4", main.display()));
    assert_eq!(c.where_set("c"), "-o c");
    assert_eq!(c.where_set("zzz"), "not set");
    assert_eq!(c.inbox_mail_location(), "maildir:~/NS");
    assert_eq!(
        parse("mail_location = mbox:~/m\n").inbox_mail_location(),
        "mbox:~/m"
    );
    assert_eq!(
        Config::default().inbox_mail_location(),
        DEFAULT_MAIL_LOCATION
    );
}

#[test]
fn override_creates_namespace() {
    let mut c = Config::default();
    c.set_override("namespace/inbox/separator", ".").unwrap();
    assert_eq!(c.inbox_namespace().separator, '.');
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.mail_location(), "maildir:~/Maildir");
    assert_eq!(c.inbox_namespace(), Namespace::default());
    assert_eq!(c.inbox_namespace().separator, '/');
    assert_eq!(c.alt_char(), '_');
    let c = parse("mail_location =\ndsync_alt_char = +\n");
    assert_eq!(c.mail_location(), "maildir:~/Maildir");
    assert_eq!(c.alt_char(), '+');
}

#[test]
fn inbox_namespace_lookup() {
    let c = parse(
        "namespace shared {\n  prefix = shared/%u/\n}\n\
         namespace priv {\n  inbox = yes\n  separator = \".\"\n  prefix = INBOX.\n  location = maildir:~/Other\n}\n",
    );
    assert_eq!(
        c.inbox_namespace(),
        Namespace {
            name: "priv".into(),
            separator: '.',
            prefix: "INBOX.".into(),
            location: Some("maildir:~/Other".into())
        }
    );
    let c = parse("namespace inbox {\n  inbox = yes\n  separator =\n  location =\n}\n");
    let ns = c.inbox_namespace();
    assert_eq!((ns.separator, ns.location), ('/', None));
    let c = parse("namespace inbox {\n  inbox = yes\n  separator = ab\n}\n");
    assert_eq!(c.inbox_namespace().separator, '/');
}

#[test]
fn load_missing_file_is_an_error() {
    let e = format!(
        "{:#}",
        Config::load(Some(Path::new("/no/such/dovecot.conf")), &[]).unwrap_err()
    );
    assert!(
        e.contains("cannot read Dovecot config /no/such/dovecot.conf"),
        "{e}"
    );
}

/// The Debian config installed with dovecot-core must parse: dsync reads it
/// by default.
#[test]
fn system_config_parses() {
    let path = Path::new(DEFAULT_CONFIG_PATH);
    if !path.exists() {
        eprintln!("!!! SKIPPED system_config_parses: {DEFAULT_CONFIG_PATH} is absent (install dovecot-core to run it)");
        return;
    }
    let c = Config::load(Some(path), &[]).unwrap();
    let loc = c.mail_location();
    assert!(!loc.is_empty());
    eprintln!(
        "system mail_location = {loc}, inbox namespace = {:?}",
        c.inbox_namespace()
    );
    // Also through the default path.
    let d = Config::load(None, &[]).unwrap();
    assert_eq!(d.mail_location(), loc);
}

/// The stock Debian files, when present, give the values Debian ships.
#[test]
fn debian_stock_values() {
    let mail = Path::new("/etc/dovecot/conf.d/10-mail.conf");
    let Ok(text) = fs::read_to_string(mail) else {
        eprintln!(
            "!!! SKIPPED debian_stock_values: {} is absent",
            mail.display()
        );
        return;
    };
    if !text.contains("\nmail_location = mbox:~/mail:INBOX=/var/mail/%u") {
        eprintln!("!!! SKIPPED debian_stock_values: 10-mail.conf was edited");
        return;
    }
    let c = Config::load(Some(Path::new(DEFAULT_CONFIG_PATH)), &[]).unwrap();
    assert_eq!(c.mail_location(), "mbox:~/mail:INBOX=/var/mail/%u");
    let ns = c.inbox_namespace();
    assert_eq!(ns.name, "inbox");
    assert_eq!(ns.separator, '/');
    let inbox = c.root().section("namespace", "inbox").unwrap();
    assert!(inbox.section("mailbox", "Sent Messages").is_some());
    assert!(c.root().section("protocol", "!indexer-worker").is_some());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn config_like() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("a = b\n".to_string()),
            Just("}\n".to_string()),
            Just("x {\n".to_string()),
            Just("ns \"q\\\"\" {\n".to_string()),
            Just("k = \"v #\" # c\n".to_string()),
            Just("k = $k z\n".to_string()),
            Just("v = <f\n".to_string()),
            Just("\\\n".to_string()),
            Just("!include_try *.conf\n".to_string()),
            "[ -~\t\n]{0,20}",
        ];
        proptest::collection::vec(atom, 0..30).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = Config::parse_str_with(&s, Path::new("/nonexistent/x.conf"), ParseOptions { follow_includes: false });
        }

        #[test]
        fn config_like_text_never_panics(s in config_like()) {
            if let Ok(c) = Config::parse_str_with(&s, Path::new("/nonexistent/x.conf"), ParseOptions { follow_includes: false }) {
                let _ = c.mail_location();
                let _ = c.inbox_namespace();
                let _ = c.alt_char();
            }
        }

        #[test]
        fn plain_values_round_trip(key in "[a-z_]{1,12}", value in "[a-zA-Z0-9:/~%._=-]{0,30}") {
            let c = Config::parse_str(&format!("{key} = {value}\n"), Path::new("/nonexistent/x.conf")).unwrap();
            prop_assert_eq!(c.get(&key), Some(value.as_str()));
        }
    }
}

/// The values Dovecot 2.3.19's `doveconf -f protocol=doveadm -h` prints
/// for the same text.
#[test]
fn agrees_with_doveconf_on_sample() {
    let c = parse(
        "mail_location = maildir:~/M#x\n\
         mail_plugins = acl \\\n   quota \\\n   zlib\n\
         postmaster_address = \"a \\\"b\\\" # c\"\n\
         login_greeting = 'it\\'s'\n\
         namespace inbox {\n  inbox = yes\n  separator = .\n}\n\
         namespace inbox {\n  prefix = INBOX.\n}\n\
         protocol doveadm {\n  mail_location = maildir:~/D\n}\n",
    );
    assert_eq!(c.root().get("mail_location"), Some("maildir:~/M"));
    assert_eq!(c.mail_location(), "maildir:~/D");
    assert_eq!(c.get("mail_plugins"), Some("acl quota zlib"));
    assert_eq!(c.get("postmaster_address"), Some("a \"b\" # c"));
    assert_eq!(c.get("login_greeting"), Some("it's"));
    let ns = c.inbox_namespace();
    assert_eq!((ns.separator, ns.prefix.as_str()), ('.', "INBOX."));
}
